-- Background exports (#18) remember the process running them, so an export cut short by a
-- restart or a crash is marked failed instead of staying "running" for ever.
alter table api_exports add column process_id uuid;
