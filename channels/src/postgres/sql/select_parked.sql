-- parked_at as milliseconds since the Unix epoch.
SELECT id, trigger_namespace, trigger_name, reason,
       (EXTRACT(EPOCH FROM parked_at) * 1000)::bigint, body
FROM weft_parked
WHERE broker_namespace = $1 AND broker_name = $2
ORDER BY id
