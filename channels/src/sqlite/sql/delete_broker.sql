-- Cascades to the broker's cursors; its events are deleted by key range first.
DELETE FROM brokers WHERE id = ?1
