-- Opens a trigger's cursor: a trigger seen for the first time starts at the end of the
-- log. Returns the broker's id; no row when the broker has no log.
WITH broker AS (
    SELECT id, head FROM weft_brokers WHERE namespace = $1 AND name = $2
), opened AS (
    INSERT INTO weft_cursors (broker_id, namespace, name, seq, claimed)
    SELECT id, $3, $4, head, head FROM broker
    ON CONFLICT (broker_id, namespace, name) DO NOTHING
)
SELECT id FROM broker
