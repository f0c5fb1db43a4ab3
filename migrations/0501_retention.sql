-- The archive's lifetime (issue #10): retention policies, legal holds, deletion requests and
-- their records, and deletion statistics.

-- A retention policy: mail in its scope older than keep_days is purged. Where policies
-- overlap, the longest keep wins: a message leaves only when every enabled policy whose scope
-- covers it has expired it.
create table retention_policies (
    id             bigint generated always as identity primary key,
    name           text collate case_insensitive not null unique check (name <> ''),
    -- true: every archive account; false: only those in retention_policy_accounts (none left
    -- after their accounts were deleted = the policy matches nothing, never everything).
    all_accounts   boolean not null default true,
    -- '*' matches any run of characters; NULL = every folder.
    folder_pattern text check (folder_pattern <> ''),
    -- The search language (archive::search); NULL = everything in scope.
    query          text check (query <> ''),
    keep_days      integer not null check (keep_days >= 1),
    -- 'message': the Date header, falling back to the server's date, then the archive date
    -- (messages.sort_date); 'archived': when it entered the archive.
    age_basis      text not null default 'message' check (age_basis in ('message', 'archived')),
    enabled        boolean not null default true,
    created_by     text not null default '',
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);
select trigger_updated_at('retention_policies');

create table retention_policy_accounts (
    policy_id  bigint not null references retention_policies (id) on delete cascade,
    account_id bigint not null references accounts (id) on delete cascade,
    primary key (policy_id, account_id)
);

-- A legal hold. Scope holds (kind 'scope') cover every message, present or future, matching all
-- of their given conditions (accounts, query, date range; none given = everything). Holds are
-- evaluated in the SQL of every delete path, so mail archived after the hold was placed is held
-- the moment it matches. Hand-picked holds (kind 'messages') cover legal_hold_messages.
create table legal_holds (
    id             bigint generated always as identity primary key,
    name           text collate case_insensitive not null unique check (name <> ''),
    reason         text not null check (reason <> ''),
    kind           text not null default 'scope' check (kind in ('scope', 'messages')),
    all_accounts   boolean not null default true,
    query          text check (query <> ''),
    -- Inclusive day range on messages.sort_date, in UTC.
    date_from      date,
    date_to        date,
    created_by     text not null,
    created_at     timestamptz not null default now(),
    released_at    timestamptz,
    released_by    text,
    release_reason text,
    check ((released_at is null) = (release_reason is null))
);

create table legal_hold_accounts (
    hold_id    bigint not null references legal_holds (id) on delete cascade,
    account_id bigint not null references accounts (id) on delete cascade,
    primary key (hold_id, account_id)
);

-- Hand-picked messages. A message under an active hold is never deleted by daygle, so the
-- cascade only fires for released holds (or when an account is removed, which is refused while
-- it has held mail).
create table legal_hold_messages (
    hold_id    bigint not null references legal_holds (id) on delete cascade,
    message_id bigint not null references messages (id) on delete cascade,
    primary key (hold_id, message_id)
);
create index legal_hold_messages_message on legal_hold_messages (message_id);

-- Manual deletions and erasures. With retention.require_approval a manual deletion waits in
-- 'pending' until a second user holding delete_mail approves it.
create table deletion_requests (
    id              bigint generated always as identity primary key,
    kind            text not null check (kind in ('manual', 'erasure')),
    state           text not null default 'pending'
                    check (state in ('pending', 'approved', 'rejected', 'done')),
    reason          text not null check (reason <> ''),
    -- What was asked for, for the record: the search, or the addresses of an erasure.
    query           text,
    addresses       text[] not null default '{}',
    requested_by_id bigint references users (id) on delete set null,
    requested_by    text not null,
    requested_at    timestamptz not null default now(),
    decided_by_id   bigint references users (id) on delete set null,
    decided_by      text,
    decided_at      timestamptz,
    decision_reason text,
    deleted         bigint not null default 0,
    kept_held       bigint not null default 0,
    done_at         timestamptz
);
create index deletion_requests_state on deletion_requests (state, requested_at desc);

-- The messages a request covers (fixed when it is made, so an approver approves exactly what
-- the requester saw) and, once done, which of them were deleted: ids and SHA-256, never content.
create table deletion_request_items (
    request_id  bigint not null references deletion_requests (id) on delete cascade,
    message_id  bigint not null,
    account_id  bigint not null,
    blob_sha256 bytea not null,
    size        bigint not null,
    deleted     boolean not null default false,
    primary key (request_id, message_id)
);

-- How much mail left the archive, by account, month and why. Kept after the mail is gone.
create table deletion_stats (
    account_id bigint not null references accounts (id) on delete cascade,
    month      date not null,
    cause      text not null
               check (cause in ('retention', 'manual', 'erasure', 'server', 'quarantine_expiry')),
    messages   bigint not null default 0,
    bytes      bigint not null default 0,
    primary key (account_id, month, cause)
);
