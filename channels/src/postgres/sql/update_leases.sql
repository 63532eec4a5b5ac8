-- Records holders' progress on their leases: lease $1[i] of epoch $2[i] has everything
-- below $3[i] done; $4[i] releases it for another consumer. A finished lease is deleted.
-- A lease that changed hands (other epoch) is left alone.
WITH progress AS (
    SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bool[])
        AS p (id, epoch, lo, release)
), finished AS (
    DELETE FROM weft_leases AS l USING progress AS p
    WHERE l.id = p.id AND l.epoch = p.epoch AND p.lo > l.hi
    RETURNING l.id
), moved AS (
    UPDATE weft_leases AS l
    SET lo = GREATEST(l.lo, p.lo),
        holder = CASE WHEN p.release THEN NULL ELSE l.holder END,
        expires_at = CASE WHEN p.release THEN now() ELSE l.expires_at END
    FROM progress AS p
    WHERE l.id = p.id AND l.epoch = p.epoch AND p.lo <= l.hi
    RETURNING l.id
)
SELECT (SELECT count(*) FROM finished) + (SELECT count(*) FROM moved)
