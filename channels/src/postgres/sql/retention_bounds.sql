-- Per log: the lowest cursor (events up to it are done; the head when the log has no
-- cursor, as a new trigger starts at the end), and how far retention got.
SELECT b.id,
       COALESCE((SELECT MIN(c.seq) FROM weft_cursors AS c WHERE c.broker_id = b.id), b.head),
       COALESCE(r.retained, 0)
FROM weft_brokers AS b
LEFT JOIN weft_retention AS r ON r.broker_id = b.id
