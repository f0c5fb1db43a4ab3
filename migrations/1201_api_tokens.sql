-- API tokens (#18): bearer tokens for scripts and e-discovery tools.

-- One personal access token. Only the SHA-256 of the token is stored: the token itself is
-- shown once, when it is created. A token never grants more than its user holds at the moment
-- of use: the request's rights are the user's current permissions and archive grants, cut
-- down to the token's scopes and (when set) to its archive restriction.
create table api_tokens (
    id            bigint generated always as identity primary key,
    user_id       bigint not null references users (id) on delete cascade,
    name          text not null check (length(name) between 1 and 100),
    -- SHA-256 of the whole token text (`dga_…`), hex-encoded.
    token_hash    text not null,
    -- The first characters of the token, so a person can tell their tokens apart.
    prefix        text not null,
    -- Subset of mail:read, mail:export, admin.
    scopes        text[] not null,
    -- Null: every archive the user may read; otherwise only these (and only while granted).
    account_ids   bigint[],
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    last_used_ip  text not null default '',
    created_at    timestamptz not null default now(),
    constraint api_tokens_token_hash_key unique (token_hash),
    constraint api_tokens_user_name_key unique (user_id, name)
);
-- The profile page lists a user's tokens.
create index api_tokens_user_idx on api_tokens (user_id);

-- Exports started through the API run in the background; the client polls and then downloads
-- the file once it is ready. The file lives under the data directory.
create table api_exports (
    id            uuid primary key,
    user_id       bigint not null references users (id) on delete cascade,
    token_id      bigint references api_tokens (id) on delete set null,
    status        text not null default 'running'
                  check (status in ('running', 'ready', 'failed')),
    format        text not null,
    messages      bigint not null default 0,
    bytes         bigint not null default 0,
    error         text not null default '',
    -- The audit row of the export, which the export's manifest cites.
    audit_id      bigint,
    created_at    timestamptz not null default now(),
    finished_at   timestamptz
);
create index api_exports_user_idx on api_exports (user_id, created_at);
