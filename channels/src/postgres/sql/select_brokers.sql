SELECT namespace, name FROM weft_brokers ORDER BY namespace, name
