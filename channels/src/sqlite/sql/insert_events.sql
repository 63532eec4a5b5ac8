-- One row; the writer repeats `, (?, ?)` to insert many in one statement. The id is
-- (broker_id << 40) | seq.
INSERT INTO events (id, body) VALUES (?, ?)
