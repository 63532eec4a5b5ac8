DELETE FROM weft_events WHERE broker_id = $1
