-- Locks the cursors of the triggers $1/$2/$3 (broker id, namespace, name) in key order, so
-- that two processes never lock them in opposite orders: no claim on them commits until
-- the transaction ends, so the statements after this one see every lease they have.
SELECT c.broker_id
FROM weft_cursors AS c
JOIN UNNEST($1::bigint[], $2::text[], $3::text[]) AS t (broker_id, namespace, name)
    ON c.broker_id = t.broker_id AND c.namespace = t.namespace AND c.name = t.name
ORDER BY c.broker_id, c.namespace, c.name
FOR UPDATE OF c
