-- The archive: IMAP account settings, single-instance blobs, one row per archived copy, the
-- completeness ledger and worker status. Ingest (issue #6) owns these tables.

-- IMAP connection settings. NULL for kinds that do not use them (imports).
alter table accounts
    add column host               text,
    add column port               integer check (port between 1 and 65535),
    add column tls_mode           text check (tls_mode in ('implicit', 'starttls', 'none')),
    add column username           text,
    -- Sealed with the instance sealing key (enc:v1:...), bound to 'account:<id>:password'.
    add column password_sealed    text,
    -- Folder name patterns ('*' matches any run of characters). Empty include = all folders.
    add column folders_include    text[] not null default '{}',
    add column folders_exclude    text[] not null default '{Trash,Junk,Spam}',
    add column poll_interval_secs integer not null default 300 check (poll_interval_secs >= 10),
    -- NULL: never delete from the server.
    add column delete_after_days  integer check (delete_after_days >= 0),
    -- After flagging \Deleted: true = expunge (UID EXPUNGE when the server has UIDPLUS).
    add column expunge            boolean not null default true,
    -- Hex SHA-256 of a self-signed server certificate the operator chose to trust.
    add column pinned_cert_sha256 text check (pinned_cert_sha256 ~ '^[0-9a-f]{64}$');

-- Raw RFC 822 bytes, exactly as received, zstd-compressed, stored once per distinct content.
create table blobs (
    sha256     bytea primary key check (length(sha256) = 32),
    size       bigint not null,
    zstd       bytea not null,
    created_at timestamptz not null default now()
);

-- One row per archived copy. IMAP copies are keyed by (account, folder, uidvalidity, uid);
-- imported copies have no uid and are keyed by content within their account.
create table messages (
    id              bigint generated always as identity primary key,
    account_id      bigint not null references accounts (id) on delete cascade,
    folder          text not null,
    uidvalidity     bigint,
    uid             bigint,
    blob_sha256     bytea not null references blobs (sha256),
    message_id      text,
    subject         text,
    from_addr       text,
    to_addrs        text,
    cc_addrs        text,
    bcc_addrs       text,
    reply_to        text,
    in_reply_to     text,
    refs            text,
    date            timestamptz,
    internal_date   timestamptz,
    size            bigint not null,
    flags           text[] not null default '{}',
    attachment_count integer not null default 0,
    has_attachments boolean generated always as (attachment_count > 0) stored,
    snippet         text,
    parse_error     text,
    -- The ClamAV stage sets this; until it exists every message is 'not_scanned'.
    scan_status     text not null default 'not_scanned',
    virus_name      text,
    search          tsvector not null,
    archived_at     timestamptz not null default now(),
    unique (account_id, folder, uidvalidity, uid)
);
create unique index messages_import_content on messages (account_id, blob_sha256) where uid is null;
create index messages_search on messages using gin (search);
create index messages_date on messages (date desc, id desc);
create index messages_account_folder_date on messages (account_id, folder, date);
create index messages_blob on messages (blob_sha256);

-- Attachment metadata; the bytes stay inside the blob.
create table attachments (
    id           bigint generated always as identity primary key,
    message_id   bigint not null references messages (id) on delete cascade,
    part_index   integer not null,
    filename     text,
    content_type text,
    size         bigint not null
);
create index attachments_message on attachments (message_id);

-- The completeness ledger, one row per account folder: where sync stands and how complete it is.
create table sync_state (
    account_id      bigint not null references accounts (id) on delete cascade,
    folder          text not null,
    uidvalidity     bigint,
    -- Highest UID whose fate (archived, skipped or failed) is committed.
    last_uid        bigint not null default 0,
    server_messages bigint,
    deleted_from_server bigint not null default 0,
    last_synced_at  timestamptz,
    updated_at      timestamptz not null default now(),
    primary key (account_id, folder)
);
select trigger_updated_at('sync_state');

-- Messages that were not archived, and why. 'failed' entries are retried on the next run and
-- removed once archived; 'skipped' entries are final (e.g. larger than the size limit).
create table ledger_entries (
    id          bigint generated always as identity primary key,
    account_id  bigint not null references accounts (id) on delete cascade,
    folder      text not null,
    uidvalidity bigint,
    uid         bigint,
    kind        text not null check (kind in ('skipped', 'failed')),
    reason      text not null,
    size        bigint,
    attempts    integer not null default 1,
    recorded_at timestamptz not null default now(),
    unique (account_id, folder, uidvalidity, uid)
);

-- Background worker status: one row per worker (e.g. 'sync:account:42'), for /workers.
create table workers (
    name              text primary key,
    account_id        bigint references accounts (id) on delete cascade,
    state             text not null default 'idle' check (state in ('idle', 'running', 'backoff', 'disabled')),
    activity          text,
    last_run_at       timestamptz,
    last_success_at   timestamptz,
    last_error        text,
    last_error_at     timestamptz,
    consecutive_failures integer not null default 0,
    messages_archived bigint not null default 0,
    next_run_at       timestamptz,
    heartbeat_at      timestamptz,
    updated_at        timestamptz not null default now()
);
select trigger_updated_at('workers');
