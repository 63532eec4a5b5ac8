-- Locks a trigger's cursor: no claim commits until the transaction ends, so the
-- statements after this one see every lease of the trigger.
SELECT claimed FROM weft_cursors WHERE broker_id = $1 AND namespace = $2 AND name = $3 FOR UPDATE
