-- Attachment text (issue #13): how reading each attachment's text went, e.g.
-- 'text extracted (5120 characters)', 'skipped: unpacks to more than 50 MB (a zip bomb?)'.
-- NULL until the background stage has looked at it. New messages with attachments that may
-- hold text are archived with search_pending = true; the stage adds their text (weight D).
alter table attachments add column text_note text;
