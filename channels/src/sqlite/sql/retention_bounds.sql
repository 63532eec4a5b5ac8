-- Per broker, the events every cursor has passed: up to the lowest cursor, or up to
-- the head when the broker has no cursor (a new trigger starts at the end anyway).
SELECT b.id, COALESCE((SELECT MIN(c.seq) FROM cursors AS c WHERE c.broker_id = b.id), b.head)
FROM brokers AS b
