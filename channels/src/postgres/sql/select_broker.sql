SELECT id FROM weft_brokers WHERE namespace = $1 AND name = $2
