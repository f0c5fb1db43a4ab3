-- The dashboard (issue #17) asks "what arrived lately": mail archived per day over up to a
-- year, the most recently archived messages, and stored bytes per day. Without these
-- indexes each of those is a scan of the whole table.
create index messages_archived_at on messages (archived_at desc, id desc);
create index blobs_created_at on blobs (created_at);
