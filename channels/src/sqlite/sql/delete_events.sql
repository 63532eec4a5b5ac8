DELETE FROM events WHERE broker_id = ?1 AND seq <= ?2
