-- Tells every process about the logs $1: new events ($2 = NOTIFY_NEW) or released leases
-- ($2 = NOTIFY_TAKEOVER). Run on the bookkeeping pool: its commit does not wait for the
-- disk.
SELECT pg_notify('weft_events', current_schema() || ':' || id::text || $2)::text
FROM UNNEST($1::bigint[]) AS id
