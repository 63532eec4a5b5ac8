-- Records a holder's progress on its leases: lease $4[i] of epoch $5[i] has everything
-- below $6[i] done; $7[i] releases it for another consumer. A finished lease is deleted.
-- A lease that changed hands (other epoch) is left alone.
WITH progress AS (
    SELECT * FROM UNNEST($4::bigint[], $5::bigint[], $6::bigint[], $7::bool[])
        AS p (id, epoch, lo, release)
), finished AS (
    DELETE FROM weft_leases AS l USING progress AS p
    WHERE l.id = p.id AND l.epoch = p.epoch AND p.lo > l.hi
      AND l.broker_id = $1 AND l.namespace = $2 AND l.name = $3
    RETURNING l.id
), moved AS (
    UPDATE weft_leases AS l
    SET lo = GREATEST(l.lo, p.lo),
        holder = CASE WHEN p.release THEN NULL ELSE l.holder END,
        expires_at = CASE WHEN p.release THEN now() ELSE l.expires_at END
    FROM progress AS p
    WHERE l.id = p.id AND l.epoch = p.epoch AND p.lo <= l.hi
      AND l.broker_id = $1 AND l.namespace = $2 AND l.name = $3
    RETURNING l.id
)
SELECT (SELECT count(*) FROM finished) + (SELECT count(*) FROM moved)
