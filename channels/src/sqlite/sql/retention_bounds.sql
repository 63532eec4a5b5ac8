-- Per broker, its lowest cursor: events up to it are done. NULL when the broker has no
-- cursor; then everything up to the head is done (a new trigger starts at the end).
SELECT b.id, (SELECT MIN(c.seq) FROM cursors AS c WHERE c.broker_id = b.id)
FROM brokers AS b
