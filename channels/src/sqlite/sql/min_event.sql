-- The lowest id stored in one log's key range (?1, ?2].
SELECT MIN(id) FROM events WHERE id > ?1 AND id <= ?2
