-- Moves a trigger's cursor up to just below its lowest unfinished lease, or to `claimed`
-- when it has none. Run after lock_cursor.sql in the same transaction.
UPDATE weft_cursors AS c
SET seq = GREATEST(c.seq, COALESCE(
    (SELECT MIN(l.lo) - 1 FROM weft_leases AS l
     WHERE l.broker_id = c.broker_id AND l.namespace = c.namespace AND l.name = c.name),
    c.claimed))
WHERE broker_id = $1 AND namespace = $2 AND name = $3
