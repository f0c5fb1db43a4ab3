-- Reading the archive: a sort key every message has, indexes for the search language, and for
-- finding conversations.

-- The Date header is missing or unparsable on some mail; such messages sort by when the server
-- received them (INTERNALDATE), else when they were archived. Never NULL, so keyset
-- pagination needs no NULL cases.
alter table messages
    add column sort_date timestamptz generated always as (coalesce(date, internal_date, archived_at)) stored;

-- Newest first, overall and within an account or folder; `id` breaks ties for keyset paging.
create index messages_sort on messages (sort_date desc, id desc);
create index messages_account_sort on messages (account_id, sort_date desc, id desc);
create index messages_folder_sort on messages (account_id, folder, sort_date desc, id desc);
-- Superseded by the sort_date indexes above.
drop index if exists messages_date;
drop index if exists messages_account_folder_date;

-- from:/to:/cc: match any part of an address or name (ILIKE '%…%').
create extension if not exists pg_trgm;
create index messages_from_trgm on messages using gin (from_addr gin_trgm_ops);
create index messages_to_trgm on messages using gin (to_addrs gin_trgm_ops);
create index messages_cc_trgm on messages using gin (cc_addrs gin_trgm_ops);
create index attachments_filename_trgm on attachments using gin (filename gin_trgm_ops);

-- msgid: and threads look messages up by Message-ID and by what they reply to.
create index messages_message_id on messages (message_id);
create index messages_thread_refs on messages
    using gin (string_to_array(trim(coalesce(in_reply_to, '') || ' ' || coalesce(refs, '')), ' '));

-- Conversations without References fall back to the subject minus Re:/Fwd: prefixes.
create function thread_subject(subject text) returns text
    language sql immutable parallel safe as $$
    select lower(trim(regexp_replace(coalesce(subject, ''),
        '^(\s*((re|fwd?|aw|wg|sv|vs|tr|antw)\s*(\[\d+\])?\s*:\s*)|\s*\[[^]]*\]\s*)+', '', 'i')))
$$;
create index messages_thread_subject on messages (thread_subject(subject), sort_date);
