-- Wakes the subscriptions of one log in every process (at commit).
SELECT pg_notify('weft_events', current_schema() || ':' || $1::text)::text
