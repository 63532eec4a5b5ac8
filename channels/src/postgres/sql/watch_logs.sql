-- The logs $1 (those with subscriptions here): each one's head, and whether one of its
-- leases is free to take over (released, or not renewed in time). A log that is gone has
-- no row.
SELECT b.id, b.head, EXISTS (
    SELECT 1 FROM weft_leases AS l
    WHERE l.broker_id = b.id AND (l.holder IS NULL OR l.expires_at < now())
)
FROM weft_brokers AS b
WHERE b.id = ANY ($1::bigint[])
