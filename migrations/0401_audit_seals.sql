-- Audit seals (issue #9): HMAC-SHA-256 over the audit chain's head, made with the audit key,
-- which lives outside the database. A row hash at entry `seq` covers every entry up to it
-- (hash chain), so one valid seal proves that whole prefix unchanged: whoever owns the
-- database can recompute the plain SHA-256 chain, but not a seal. Append-only like the log.
create table audit_seals (
    seq    bigint primary key,
    hash   text not null,
    mac    text not null,
    at     timestamptz not null default now()
);

create trigger audit_seals_no_update before update or delete on audit_seals
    for each row execute function audit_log_refuse_change();
create trigger audit_seals_no_truncate before truncate on audit_seals
    for each statement execute function audit_log_refuse_change();
