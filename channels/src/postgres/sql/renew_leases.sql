-- Extends the leases this process holds; returns those it still holds.
UPDATE weft_leases AS l
SET expires_at = now() + make_interval(secs => $3)
FROM UNNEST($1::bigint[], $2::bigint[]) AS held (id, epoch)
WHERE l.id = held.id AND l.epoch = held.epoch
RETURNING l.id
