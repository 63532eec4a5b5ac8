-- Moves the cursors of the triggers $1/$2/$3 up to just below their lowest unfinished
-- lease, or to `claimed` when they have none. Run after lock_cursors.sql and
-- update_leases.sql in the same transaction.
UPDATE weft_cursors AS c
SET seq = GREATEST(c.seq, COALESCE(
    (SELECT MIN(l.lo) - 1 FROM weft_leases AS l
     WHERE l.broker_id = c.broker_id AND l.namespace = c.namespace AND l.name = c.name),
    c.claimed))
FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS t (broker_id, namespace, name)
WHERE c.broker_id = t.broker_id AND c.namespace = t.namespace AND c.name = t.name
