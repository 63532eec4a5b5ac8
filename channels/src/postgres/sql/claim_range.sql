-- Claims the next range of a trigger's events, up to $4 of them, as a new lease held by
-- $5. Optimistic: the cursor's `claimed` is read without a lock and the update applies
-- only if it is unchanged, so two claimers never get the same range; the loser retries.
-- Returns the cursor's `claimed` (NULL: no cursor), the log's head, and the lease if one
-- was taken.
WITH cursor AS (
    SELECT claimed FROM weft_cursors
    WHERE broker_id = $1 AND namespace = $2 AND name = $3
), log AS (
    SELECT head FROM weft_brokers WHERE id = $1
), advanced AS (
    UPDATE weft_cursors AS c
    SET claimed = LEAST(cursor.claimed + $4, log.head)
    FROM cursor, log
    WHERE c.broker_id = $1 AND c.namespace = $2 AND c.name = $3
      AND c.claimed = cursor.claimed AND log.head > cursor.claimed
    RETURNING cursor.claimed AS before, c.claimed AS after
), lease AS (
    INSERT INTO weft_leases (broker_id, namespace, name, lo, hi, holder, expires_at)
    SELECT $1, $2, $3, before + 1, after, $5, now() + make_interval(secs => $6)
    FROM advanced
    RETURNING id, epoch, lo, hi
)
SELECT (SELECT claimed FROM cursor), (SELECT head FROM log),
       lease.id, lease.epoch, lease.lo, lease.hi
FROM (VALUES (1)) AS one LEFT JOIN lease ON true
