-- Microsoft Graph message ids (#12) as archive UIDs. Graph ids are long strings (immutable ids,
-- kept when a message moves), the archive keys copies by (account, folder, UIDVALIDITY, UID):
-- each id seen in a folder gets a number once, before its message is fetched, so a replayed or
-- re-listed message finds its row and is never stored twice.
create table graph_ids (
    account_id bigint not null references accounts (id) on delete cascade,
    folder     text not null,
    graph_id   text not null,
    uid        bigint generated always as identity unique,
    primary key (account_id, folder, graph_id)
);
