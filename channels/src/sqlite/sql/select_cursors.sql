SELECT namespace, name FROM cursors WHERE broker_id = ?1 ORDER BY namespace, name
