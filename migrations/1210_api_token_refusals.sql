-- Requests refused by an API token's rate limit (#18), for the alert "API token keeps hitting
-- its rate limit". One counter per token and minute, not a row per request: a client that
-- keeps calling while refused adds nothing but a count. Rows older than a day are removed as
-- new ones arrive.
create table api_token_refusals (
    token_id  bigint not null references api_tokens (id) on delete cascade,
    -- The minute the refusals fell in (date_trunc('minute', now())).
    minute    timestamptz not null,
    refused   integer not null default 1 check (refused > 0),
    primary key (token_id, minute)
);
-- The alert sums the recent minutes of every token.
create index api_token_refusals_minute_idx on api_token_refusals (minute);
