-- The next events of one log: ids in (?1, ?2], the log's key range above the cursor.
SELECT id, body FROM events WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3
