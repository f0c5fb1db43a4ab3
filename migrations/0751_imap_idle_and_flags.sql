-- IMAP closer to real servers (#12): IDLE on INBOX, and flags changed on the server followed.

-- Watch INBOX with IDLE so new mail is archived within seconds. NULL follows `sync.idle`.
alter table accounts add column idle boolean;
-- Copy flag changes made on the server (read, answered, flagged, keywords) to archived copies.
alter table accounts add column follow_flags boolean not null default false;

-- The folder's HIGHESTMODSEQ (RFC 7162 CONDSTORE) whose flag changes are in the archive, so the
-- next pass asks only for what changed since. NULL: never followed, or no CONDSTORE.
alter table sync_state add column flags_modseq bigint;
