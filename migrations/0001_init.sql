-- Shared helpers and the instance's own bookkeeping. Later migrations add the domain tables.
-- Migrations are append-only: never edit a file once it has landed (sqlx checks checksums).

-- Keeps updated_at honest without every UPDATE having to remember it.
create or replace function set_updated_at() returns trigger as $$
begin
    new.updated_at = now();
    return new;
end;
$$ language plpgsql;

create or replace function trigger_updated_at(tablename regclass) returns void as $$
begin
    execute format(
        'create trigger set_updated_at before update on %s
         for each row when (old is distinct from new) execute function set_updated_at()',
        tablename);
end;
$$ language plpgsql;

-- Case-insensitive comparisons for usernames, e-mail addresses and account names.
create collation if not exists case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

-- One row describing this installation.
create table instance (
    id          boolean primary key default true check (id),
    instance_id uuid not null default gen_random_uuid(),
    created_at  timestamptz not null default now()
);
insert into instance default values;

-- Settings changed from the UI; they override the config file for the keys they name.
create table settings (
    key        text primary key,
    value      jsonb not null,
    updated_at timestamptz not null default now()
);
select trigger_updated_at('settings');
