-- Appends one broker's share of a group commit: takes the broker's row lock (appenders of
-- one broker queue here, across processes), numbers the events head+1..head+n and inserts
-- them. No row: the broker is gone. (Listeners are notified afterwards, by
-- notify_logs.sql, so that the notification lock is not held while the commit waits for
-- the disk.)
WITH head AS (
    UPDATE weft_brokers SET head = head + cardinality($2::bytea[])
    WHERE id = $1
    RETURNING head
), stored AS (
    INSERT INTO weft_events (broker_id, seq, body)
    SELECT $1, head.head - cardinality($2::bytea[]) + e.ord, e.body
    FROM head, UNNEST($2::bytea[]) WITH ORDINALITY AS e (body, ord)
)
SELECT head FROM head
