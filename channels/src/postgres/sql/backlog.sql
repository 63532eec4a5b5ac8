-- A log's head and one trigger's cursor (NULL if it never subscribed); no row when the
-- broker has no log.
SELECT b.head, c.seq
FROM weft_brokers AS b
LEFT JOIN weft_cursors AS c ON c.broker_id = b.id AND c.namespace = $3 AND c.name = $4
WHERE b.namespace = $1 AND b.name = $2
