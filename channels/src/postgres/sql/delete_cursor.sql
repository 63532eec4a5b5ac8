-- Its leases go with it (cascade).
DELETE FROM weft_cursors
WHERE broker_id = (SELECT id FROM weft_brokers WHERE namespace = $1 AND name = $2)
  AND namespace = $3 AND name = $4
