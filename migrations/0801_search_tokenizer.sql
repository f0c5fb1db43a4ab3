-- Search vectors built by the application's tokenizer (issue #13): compounds split and kept
-- whole, accents folded, Snowball stems, character pairs for unspaced scripts.

-- The stemming language of each archive account (a Snowball language name, or 'simple').
alter table accounts add column search_language text not null default 'english';

-- True while a message's search vector is not the one the current tokenizer would build from
-- its raw bytes: every message archived before this migration (PostgreSQL's 'simple' parser).
-- `serve` rebuilds them in the background, a batch at a time (`daygle reindex` does it at
-- once); until then searches still find their exact words. New rows are built right.
alter table messages add column search_pending boolean not null default true;
alter table messages alter column search_pending set default false;
create index messages_search_pending on messages (id) where search_pending;
