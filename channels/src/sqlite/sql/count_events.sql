SELECT COUNT(*) FROM events WHERE id > ?1 AND id <= ?2
