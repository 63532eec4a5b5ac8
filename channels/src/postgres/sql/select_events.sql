SELECT seq, body FROM weft_events WHERE broker_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq
