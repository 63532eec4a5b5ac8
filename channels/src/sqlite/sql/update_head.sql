UPDATE brokers SET head = ?2 WHERE id = ?1
