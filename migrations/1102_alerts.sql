-- Alerts (issue #17). One row per occurrence of a condition: opened once, refreshed while it
-- holds (last_seen_at, seen_count), resolved when it clears. The partial unique index is
-- what keeps a condition from opening a second alert while the first is open.
create table alerts (
    id              bigint generated always as identity primary key,
    -- notify::Trigger::key(), e.g. 'sync_failing'.
    trigger         text not null,
    -- What it is about: 'account:<id>', or '' for the installation as a whole.
    subject         text not null default '',
    severity        text not null check (severity in ('warning', 'critical')),
    title           text not null,
    detail          text not null default '',
    link            text not null default '',
    opened_at       timestamptz not null default now(),
    last_seen_at    timestamptz not null default now(),
    seen_count      integer not null default 1,
    resolved_at     timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    emailed_at      timestamptz,
    email_attempts  integer not null default 0,
    -- Set while one evaluator sends the mail, so another does not send it too.
    email_claimed_at timestamptz,
    email_error     text
);
create unique index alerts_open_once on alerts (trigger, subject) where resolved_at is null;
create index alerts_resolved on alerts (resolved_at desc) where resolved_at is not null;

-- An administrator's changes to a trigger; triggers without a row use the defaults in code.
create table alert_triggers (
    trigger    text primary key,
    enabled    boolean not null,
    threshold  bigint not null check (threshold >= 0),
    send_email boolean not null,
    -- Empty: the administrators' addresses.
    recipients text[] not null default '{}',
    updated_at timestamptz not null default now()
);

-- "No new mail for longer than usual" asks each account for its latest message.
create index messages_account_archived_at on messages (account_id, archived_at);
