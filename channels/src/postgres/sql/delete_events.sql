-- Deletes the events of log $1 after $2 up to $3, and records that retention got to $3.
-- Returns how many were deleted.
WITH deleted AS (
    DELETE FROM weft_events WHERE broker_id = $1 AND seq > $2 AND seq <= $3
    RETURNING 1
), retained AS (
    INSERT INTO weft_retention (broker_id, retained) VALUES ($1, $3)
    ON CONFLICT (broker_id)
    DO UPDATE SET retained = GREATEST(weft_retention.retained, EXCLUDED.retained)
)
SELECT COUNT(*) FROM deleted
