-- Gmail API and Microsoft Graph accounts (#12): how they authenticate, where their sync stands,
-- and the labels a message carries.

-- The mailbox an OAuth account archives and how it gets its access tokens.
alter table accounts
    -- The mailbox address (Gmail user id / Graph user principal name) the account archives;
    -- NULL for a delegated account until it is connected (it then archives the connected user).
    add column mailbox             text,
    -- 'delegated': a person connected the mailbox in the browser (authorization code + PKCE)
    -- and a refresh token is stored; 'app': the instance's own credentials from [google] /
    -- [microsoft] (service account with domain-wide delegation / client credentials).
    add column oauth_mode          text check (oauth_mode in ('delegated', 'app')),
    -- Sealed with the instance sealing key (enc:v1:...), bound to the account id, its kind and
    -- its mailbox, so it opens for no other account or provider. Write-only: never shown.
    add column oauth_refresh_sealed text,
    -- The token endpoint the refresh token was issued by and may be sent to. The sealed value's
    -- associated data names it: a token never follows a changed endpoint (connect again).
    add column oauth_token_url     text,
    -- The identity the provider reported when the mailbox was connected (e-mail address).
    add column oauth_identity      text,
    -- 'ok', or 'reconnect' after the provider refused the grant (consent revoked, password
    -- changed): the scheduler leaves the account alone until someone connects it again.
    add column oauth_state         text not null default 'ok'
        check (oauth_state in ('ok', 'reconnect')),
    add column oauth_error         text,
    -- When the last access token obtained expires (shown on the account page; the token itself
    -- stays in memory).
    add column oauth_expires_at    timestamptz;

-- Delta positions next to the UID positions: Gmail's historyId (one row per account), a Graph
-- folder's @odata.deltaLink (one row per folder). `delta` moves only in the transaction that
-- stores the messages it covers; `delta_pending` is where a full listing started (Gmail: the
-- mailbox historyId before listing; Graph: a nextLink being paged), so a listing cut short
-- resumes and, once complete, its start becomes `delta`.
alter table sync_state
    add column delta         text,
    add column delta_pending text;

-- A message's labels (Gmail label ids; IMAP X-GM-LABELS names). One message, many labels: the
-- message is stored once and carries all of them.
alter table messages
    add column labels text[] not null default '{}';
-- `label:NAME` searches go through this index.
create index messages_labels on messages using gin (labels) where labels <> '{}';

-- The names of an account's labels, so a renamed label needs no rewrite of its messages.
create table account_labels (
    account_id bigint not null references accounts (id) on delete cascade,
    label_id   text not null,
    name       text not null,
    -- 'system' (INBOX, SENT, ...) or 'user'.
    kind       text not null default 'user',
    primary key (account_id, label_id)
);
-- `label:NAME` resolves names case-insensitively per account.
create index account_labels_name on account_labels (account_id, lower(name));
