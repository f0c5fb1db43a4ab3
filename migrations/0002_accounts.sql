-- Archive accounts: the mailboxes (or import sets) mail is archived from. Every archived message
-- belongs to exactly one account, and per-user access to mail is granted per account.
-- Source-specific settings (IMAP host, sealed password, folders, ...) are added by the ingest
-- migrations; this table is the identity every other part refers to.
create table accounts (
    id         bigint generated always as identity primary key,
    name       text collate case_insensitive not null unique,
    kind       text not null check (kind in ('imap', 'import', 'gmail', 'graph')),
    enabled    boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
select trigger_updated_at('accounts');
