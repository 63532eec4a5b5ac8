-- Appends one broker's share of a group commit: takes the broker's row lock (appenders of
-- one broker queue here, across processes), numbers the events head+1..head+n, inserts
-- them, and notifies listeners when the transaction commits. No row: the broker is gone.
WITH head AS (
    UPDATE weft_brokers SET head = head + cardinality($2::bytea[])
    WHERE id = $1
    RETURNING head
), stored AS (
    INSERT INTO weft_events (broker_id, seq, body)
    SELECT $1, head.head - cardinality($2::bytea[]) + e.ord, e.body
    FROM head, UNNEST($2::bytea[]) WITH ORDINALITY AS e (body, ord)
)
SELECT head.head, pg_notify('weft_events', current_schema() || ':' || $1::text)::text
FROM head
