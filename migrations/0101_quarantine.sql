-- Virus scanning (issue 4): the quarantine, and the record of mail refused with action=reject.

-- Infected messages held back from the archive. The raw message is kept sealed: zstd, then
-- XChaCha20-Poly1305 under a random per-message data key (sealed_raw), whose key is in turn
-- sealed with the archiver's sealing key (wrapped_key, enc:v1 format). Both are bound to the
-- row id and sha256 as associated data. Headers are kept in clear for listing and search.
create table quarantine (
    id             uuid primary key,
    account_id     bigint references accounts (id) on delete cascade,
    folder         text not null default '',
    uidvalidity    bigint,
    uid            bigint,
    sha256         text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    size           bigint not null check (size >= 0),
    message_id     text,
    subject        text,
    from_addr      text,
    sent_at        timestamptz,
    virus_name     text not null,
    -- where the detection happened: ingest, rescan or import
    source         text not null default 'ingest',
    wrapped_key    text not null,
    sealed_raw     bytea not null,
    created_at     timestamptz not null default now(),
    -- null: kept until someone deletes or releases it
    expires_at     timestamptz,
    released_at    timestamptz,
    released_by    text,
    release_reason text,
    check ((released_at is null) = (released_by is null))
);

-- A replayed sync batch must not quarantine the same server message twice.
create unique index quarantine_source_position
    on quarantine (account_id, folder, uidvalidity, uid)
    where uid is not null;
create index quarantine_created on quarantine (created_at desc);
create index quarantine_expiry on quarantine (expires_at) where expires_at is not null;

-- Infected mail refused outright (clamav.action = reject): only the facts, never the bytes.
create table scan_rejections (
    id          bigint generated always as identity primary key,
    account_id  bigint references accounts (id) on delete cascade,
    folder      text not null default '',
    uidvalidity bigint,
    uid         bigint,
    sha256      text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    size        bigint not null check (size >= 0),
    message_id  text,
    subject     text,
    from_addr   text,
    sent_at     timestamptz,
    virus_name  text not null,
    source      text not null default 'ingest',
    created_at  timestamptz not null default now()
);

create unique index scan_rejections_source_position
    on scan_rejections (account_id, folder, uidvalidity, uid)
    where uid is not null;
