INSERT INTO weft_parked
    (broker_namespace, broker_name, trigger_namespace, trigger_name, reason, body)
VALUES ($1, $2, $3, $4, $5, $6)
