-- People and trust (issue #3): roles, users, per-archive grants, second factor, audit log.

-- A role is a named set of permissions. System roles are created here and can be neither
-- edited nor deleted; `all_accounts` lets a role read every archive account without grants.
create table roles (
    id           bigint generated always as identity primary key,
    name         text collate case_insensitive not null unique,
    description  text not null default '',
    permissions  text[] not null default '{}',
    all_accounts boolean not null default false,
    system       boolean not null default false,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);
select trigger_updated_at('roles');

insert into roles (name, description, permissions, all_accounts, system) values
    ('Administrator', 'Everything, including users, roles and settings.',
     array['view_dashboard','view_mail','export_mail','delete_mail','import_mail','view_quarantine',
           'manage_quarantine','manage_accounts','manage_users','manage_roles','manage_retention',
           'view_audit','manage_settings','view_workers'], true, true),
    ('Auditor', 'Reads every archive and the audit log; changes nothing.',
     array['view_dashboard','view_mail','export_mail','view_quarantine','view_audit','view_workers'], true, true),
    ('Read Only', 'Reads the archive accounts granted to them.',
     array['view_dashboard','view_mail'], false, true);

create table users (
    id             bigint generated always as identity primary key,
    username       text collate case_insensitive not null unique,
    email          text not null default '',
    password_hash  text not null,
    enabled        boolean not null default true,
    -- Copied into each session at sign-in; bumping it ends every other session of the user.
    session_epoch  bigint not null default 0,
    failed_logins  integer not null default 0,
    locked_until   timestamptz,
    -- Sealed with the instance sealing key; null while the user has no second factor.
    totp_secret    text,
    -- The last accepted TOTP time step, so a code cannot be used twice.
    totp_last_step bigint,
    timezone       text not null default 'UTC',
    date_format    text not null default '%Y-%m-%d %H:%M',
    page_size      integer not null default 50 check (page_size between 10 and 500),
    theme          text not null default 'auto' check (theme in ('auto', 'light', 'dark')),
    last_login_at  timestamptz,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);
select trigger_updated_at('users');

create table user_roles (
    user_id bigint not null references users (id) on delete cascade,
    role_id bigint not null references roles (id) on delete restrict,
    primary key (user_id, role_id)
);

-- Per-user archive access: private by default, a row per granted account.
create table user_accounts (
    user_id    bigint not null references users (id) on delete cascade,
    account_id bigint not null references accounts (id) on delete cascade,
    primary key (user_id, account_id)
);
create index user_accounts_account_idx on user_accounts (account_id);

-- One-time recovery codes for the second factor, stored as SHA-256 hex.
create table recovery_codes (
    user_id   bigint not null references users (id) on delete cascade,
    code_hash text not null,
    used_at   timestamptz,
    primary key (user_id, code_hash)
);

-- Append-only, hash-chained audit log. Each row's hash covers its content and the previous
-- row's hash, so an edit anywhere breaks every later link (`daygle verify audit`).
create table audit_log (
    id         bigint generated always as identity primary key,
    at         timestamptz not null default now(),
    user_id    bigint,
    username   text not null default '',
    ip         text not null default '',
    user_agent text not null default '',
    action     text not null,
    target     text not null default '',
    details    jsonb not null default '{}',
    prev_hash  text not null,
    hash       text not null
);
create index audit_log_at_idx on audit_log (at);
create index audit_log_action_idx on audit_log (action);

create or replace function audit_log_refuse_change() returns trigger as $$
begin
    raise exception 'audit_log is append-only: % is not allowed', tg_op;
end;
$$ language plpgsql;

create trigger audit_log_no_update before update or delete on audit_log
    for each row execute function audit_log_refuse_change();
create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function audit_log_refuse_change();
