SELECT seq, body FROM events WHERE broker_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3
