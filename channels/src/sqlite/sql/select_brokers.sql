SELECT id, namespace, name, head FROM brokers
