-- A trigger seen for the first time starts at the end of the log (?4 = head).
INSERT INTO cursors (broker_id, namespace, name, seq) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (broker_id, namespace, name) DO NOTHING
