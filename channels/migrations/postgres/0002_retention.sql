-- How far retention got in each log: every event <= retained is deleted. Retention
-- deletes from here on, so it never walks the index entries of events deleted before
-- (which stay until vacuum). A table of its own, so that retention never waits for the
-- broker's row, which appenders hold.
CREATE TABLE weft_retention (
    broker_id BIGINT PRIMARY KEY REFERENCES weft_brokers (id) ON DELETE CASCADE,
    retained  BIGINT NOT NULL
);
