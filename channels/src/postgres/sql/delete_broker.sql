-- Waits for the broker's appenders, then deletes it; cursors and leases go with it
-- (cascade). Its events are deleted next, in the same transaction.
DELETE FROM weft_brokers WHERE id = $1
