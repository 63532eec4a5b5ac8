DELETE FROM cursors WHERE broker_id = ?1 AND namespace = ?2 AND name = ?3
