-- Never moves back: several subscriptions of one trigger may report progress.
UPDATE cursors SET seq = MAX(seq, ?4) WHERE broker_id = ?1 AND namespace = ?2 AND name = ?3
