-- One row; the writer repeats `, (?, ?, ?)` to insert many in one statement.
INSERT INTO events (broker_id, seq, body) VALUES (?, ?, ?)
