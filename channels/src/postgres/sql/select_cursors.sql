-- The triggers with a cursor on a log; the broker's id is NULL-free only if it exists.
SELECT b.id, c.namespace, c.name
FROM weft_brokers AS b LEFT JOIN weft_cursors AS c ON c.broker_id = b.id
WHERE b.namespace = $1 AND b.name = $2
ORDER BY c.namespace, c.name
