-- Takes over the oldest lease of a trigger that its holder released or stopped renewing,
-- skipping those another consumer is taking right now. The new epoch voids whatever the
-- former holder still reports.
UPDATE weft_leases
SET holder = $4, epoch = epoch + 1, expires_at = now() + make_interval(secs => $5)
WHERE id = (
    SELECT id FROM weft_leases
    WHERE broker_id = $1 AND namespace = $2 AND name = $3
      AND (holder IS NULL OR expires_at < now())
    ORDER BY lo
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, epoch, lo, hi
