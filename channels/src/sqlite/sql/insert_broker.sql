INSERT INTO brokers (namespace, name) VALUES (?1, ?2) ON CONFLICT (namespace, name) DO NOTHING
