-- Deletes the ids in (?1, ?2]: a prefix of one log's key range.
DELETE FROM events WHERE id > ?1 AND id <= ?2
