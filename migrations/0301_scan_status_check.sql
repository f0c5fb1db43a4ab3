-- Code health (issue 15): `messages.scan_status` admits exactly the values of the Rust enum
-- `scan::ScanStatus` (the workers table already checks its `state` the same way).
alter table messages
    add constraint messages_scan_status_known
    check (scan_status in ('not_scanned', 'clean', 'infected', 'too_large', 'pending'));
