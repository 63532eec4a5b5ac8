-- Per log: the lowest cursor (events up to it are done; the head when the log has no
-- cursor, as a new trigger starts at the end) and the oldest stored event, if any.
SELECT b.id,
       COALESCE((SELECT MIN(c.seq) FROM weft_cursors AS c WHERE c.broker_id = b.id), b.head),
       (SELECT MIN(e.seq) FROM weft_events AS e WHERE e.broker_id = b.id)
FROM weft_brokers AS b
