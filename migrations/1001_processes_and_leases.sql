-- Several daygle processes on one PostgreSQL (#16): who is running, who syncs which account,
-- who runs the once-per-installation jobs, and the database outages they lived through.

-- Every running `daygle serve`, with its role and a heartbeat, so a lease names a live holder
-- and /workers shows which process does what. A graceful stop sets stopped_at; a killed
-- process just stops beating. The leader deletes rows of processes gone for a week.
create table processes (
    id            uuid primary key,
    hostname      text not null,
    pid           integer not null,
    role          text not null check (role in ('web', 'worker', 'all')),
    version       text not null,
    started_at    timestamptz not null default now(),
    heartbeat_at  timestamptz not null default now(),
    stopped_at    timestamptz
);

-- Which worker syncs which account. The holder renews its leases while it lives; an expired or
-- free lease is claimed by any worker (FOR UPDATE SKIP LOCKED), so a dead worker's accounts
-- move on within the lease time. One row per account, added when workers first look.
create table account_leases (
    account_id   bigint primary key references accounts (id) on delete cascade,
    holder       uuid references processes (id) on delete set null,
    acquired_at  timestamptz,
    expires_at   timestamptz
);
-- A worker renews and lists its own leases by holder.
create index account_leases_holder on account_leases (holder);

-- The jobs that must run once per installation (retention purge, quarantine expiry, scheduled
-- verify, alert evaluation, the pending-scan backlog, session clean-up) run in the one process
-- holding this lease. A single row, claimed like the account leases.
create table leader_lease (
    name         text primary key check (name = 'leader'),
    holder       uuid references processes (id) on delete set null,
    acquired_at  timestamptz,
    expires_at   timestamptz
);
insert into leader_lease (name) values ('leader');

-- Database outages a process saw end (the private cluster died and was restarted, or an
-- external server was unreachable), shown on the dashboard.
create table database_outages (
    id          bigint generated always as identity primary key,
    process     text not null,
    started_at  timestamptz not null,
    ended_at    timestamptz not null,
    detail      text not null
);
-- The dashboard lists the latest.
create index database_outages_ended on database_outages (ended_at desc);
