SELECT COUNT(*) FROM events WHERE broker_id = ?1
