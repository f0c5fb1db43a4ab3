-- Attachments stored once (issue #14). A blob is either the whole message, zstd-compressed
-- (layout 0, as before), or a skeleton (layout 1): the message with the encoded bytes of its
-- larger attachments cut out and replaced by references to `parts`, keyed by the SHA-256 of
-- those encoded bytes. The same attachment in 40 mailboxes, in forwards and in replies is then
-- stored once. Reassembly is byte for byte; every read checks the blob's SHA-256.
-- Layout 2: whole, examined (no attachment large enough to store apart). Layout 0 blobs are
-- those from before; the background reindex converts them (flagged below).
alter table blobs add column layout smallint not null default 0 check (layout in (0, 1, 2));

create table parts (
    -- SHA-256 of the part's encoded bytes exactly as they appear in the message.
    sha256     bytea primary key check (length(sha256) = 32),
    -- Length of those encoded bytes.
    size       bigint not null,
    -- 0: zstd of the encoded bytes; 1: zstd of the base64-decoded bytes after a 4-byte header
    -- (line length, line ending), re-encoded on read (only chosen when that is exact).
    form       smallint not null check (form in (0, 1)),
    zstd       bytea not null,
    created_at timestamptz not null default now()
);

-- Which parts each skeleton references: what blob collection consults, and what keeps a part
-- (foreign key) while any message needs it.
create table blob_parts (
    blob_sha256 bytea not null references blobs (sha256) on delete cascade,
    part_sha256 bytea not null references parts (sha256),
    primary key (blob_sha256, part_sha256)
);
create index blob_parts_part on blob_parts (part_sha256);

-- Existing archives convert online: the background reindex (or `daygle reindex`) reads each
-- flagged message's original anyway, and stores its blob in the new layout. Only messages with
-- attachments can change.
update messages set search_pending = true where attachment_count > 0 and not search_pending;
