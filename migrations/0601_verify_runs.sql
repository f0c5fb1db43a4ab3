-- Archive verification (issue 11): the result of each `verify archive` run, so administrators
-- can see when the archive was last proven intact and what was wrong if it was not.

create table verify_runs (
    id               bigint generated always as identity primary key,
    -- 'cli' (daygle verify archive) or 'schedule' (serve's periodic run)
    trigger          text not null check (trigger in ('cli', 'schedule')),
    started_at       timestamptz not null default now(),
    -- NULL while running; a run whose heartbeat stopped was interrupted
    finished_at      timestamptz,
    heartbeat_at     timestamptz not null default now(),
    -- NULL: every blob; else the share of blobs that was checked
    sample_percent   double precision check (sample_percent > 0 and sample_percent <= 100),
    account_id       bigint references accounts (id) on delete set null,
    blobs_checked    bigint not null default 0,
    messages_checked bigint not null default 0,
    bytes_checked    bigint not null default 0,
    quarantine_checked bigint not null default 0,
    problem_count    bigint not null default 0,
    -- The first problems found (message id, account, folder, kind, detail); the CLI prints all.
    problems         jsonb not null default '[]',
    -- Why the run could not finish (database gone, shutdown), when it did not.
    error            text
);
create index verify_runs_started on verify_runs (started_at desc);
-- At most one scheduled run at a time across every serve instance sharing the database.
create unique index verify_runs_one_scheduled on verify_runs ((true))
    where finished_at is null and trigger = 'schedule';
