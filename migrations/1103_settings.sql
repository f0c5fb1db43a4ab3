-- Runtime settings (issue #17). A secret setting (the SMTP password) is sealed with the
-- sealing key in its own column, so key rotation finds it and the jsonb value never holds
-- it (value is then JSON null). updated_by names who changed the value last, for the page.
alter table settings
    add column sealed text,
    add column updated_by text not null default '';
