-- People (issue #17): invitations by e-mail, "forgot password" links, and the password an
-- administrator set that its owner must change at the next sign-in.

-- Set when someone else chose the user's password (an administrator creating the user or
-- resetting the password); every page leads to the change-password page until it is changed.
alter table users add column must_change_password boolean not null default false;

-- An invitation to become a user. Only the SHA-256 of the link's token is stored: the link is
-- shown (or mailed) once. The roles and archive grants were checked against the inviter's own
-- rights when the invitation was made, and are checked again when it is accepted.
create table invitations (
    id              bigint generated always as identity primary key,
    username        text collate case_insensitive not null,
    email           text not null,
    role_ids        bigint[] not null default '{}',
    account_ids     bigint[] not null default '{}',
    -- SHA-256 of the link's token, hex. A resend replaces it (the old link stops working).
    token_hash      text not null,
    invited_by      bigint references users (id) on delete set null,
    invited_by_name text not null default '',
    created_at      timestamptz not null default now(),
    -- When the link was last (re)made, and when it stops working.
    sent_at         timestamptz not null default now(),
    expires_at      timestamptz not null,
    accepted_at     timestamptz,
    accepted_user   bigint references users (id) on delete set null,
    revoked_at      timestamptz,
    constraint invitations_token_hash_key unique (token_hash)
);
-- One open invitation per username at a time.
create unique index invitations_open_username_key on invitations (username)
    where accepted_at is null and revoked_at is null;

-- A "forgot password" link: single use, short-lived, stored as the SHA-256 of its token.
create table password_resets (
    token_hash  text primary key,
    user_id     bigint not null references users (id) on delete cascade,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null,
    used_at     timestamptz,
    requested_ip text not null default ''
);
create index password_resets_user_idx on password_resets (user_id);
