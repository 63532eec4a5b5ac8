SELECT id, head FROM brokers WHERE namespace = ?1 AND name = ?2
