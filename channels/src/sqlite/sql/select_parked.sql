SELECT id, trigger_namespace, trigger_name, reason, parked_at, body FROM parked
WHERE broker_namespace = ?1 AND broker_name = ?2 ORDER BY id
