-- Wakes the subscriptions of one log in every process (at commit); $2 tells what for
-- (see NOTIFY_NEW and NOTIFY_TAKEOVER).
SELECT pg_notify('weft_events', current_schema() || ':' || $1::text || $2)::text
