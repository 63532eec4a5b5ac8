-- Tells every process that the logs $1 have new events (see NOTIFY_NEW). Run on the
-- bookkeeping pool: its commit does not wait for the disk.
SELECT pg_notify('weft_events', current_schema() || ':' || id::text)::text
FROM UNNEST($1::bigint[]) AS id
