INSERT INTO weft_brokers (namespace, name) VALUES ($1, $2) ON CONFLICT (namespace, name) DO NOTHING
