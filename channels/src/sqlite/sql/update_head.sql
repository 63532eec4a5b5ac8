-- Recorded when retention deletes events, so numbering continues after a restart even
-- when every event is gone. Never moves back.
UPDATE brokers SET head = MAX(head, ?2) WHERE id = ?1
