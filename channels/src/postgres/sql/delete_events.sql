-- Deletes the events lo..=hi of one log.
DELETE FROM weft_events WHERE broker_id = $1 AND seq >= $2 AND seq <= $3
