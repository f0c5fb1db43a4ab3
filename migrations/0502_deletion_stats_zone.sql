-- Deletion statistics are shown per month in the reader's time zone, like every other report
-- (#10). A UTC month cannot be re-cut into another zone's month, so counts are now kept per
-- quarter hour (every time zone's offset is a whole number of quarter hours) and summed into
-- months when read. Rows counted before this migration only knew their UTC month: they are
-- placed in the middle of it, which falls in the same month in every zone.
alter table deletion_stats add column bucket timestamptz;
update deletion_stats set bucket = (month + 14)::timestamp at time zone 'UTC';
alter table deletion_stats alter column bucket set not null;
alter table deletion_stats drop constraint deletion_stats_pkey;
alter table deletion_stats drop column month;
alter table deletion_stats add primary key (account_id, bucket, cause);
