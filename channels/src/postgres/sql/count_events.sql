SELECT COUNT(*) FROM weft_events
WHERE broker_id = (SELECT id FROM weft_brokers WHERE namespace = $1 AND name = $2)
