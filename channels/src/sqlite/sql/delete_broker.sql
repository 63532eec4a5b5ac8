-- Cascades to the broker's events and cursors.
DELETE FROM brokers WHERE id = ?1
