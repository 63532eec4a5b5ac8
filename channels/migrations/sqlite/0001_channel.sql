-- The SQLite channel: one append-only log per broker, one cursor per trigger, and the
-- events kept for the operator because they could be neither delivered nor dead-lettered.

-- A broker's log. AUTOINCREMENT so that a deleted and re-created broker never gets the
-- id of the old one (a subscription on the old log must not read the new one).
CREATE TABLE brokers (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    -- At least the highest sequence number retention has deleted. Retention may delete
    -- every event, and numbering must continue after a restart: the log's head is the
    -- larger of this and its highest stored event.
    head      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (namespace, name)
);

-- Events in append order, numbered 1, 2, 3, ... per broker. The key packs both,
-- `id = (broker_id << 40) | seq`, so the table is a single b-tree (the rowid) ordered by
-- broker then sequence: a log is one contiguous key range, appends go to its end, and
-- retention deletes a prefix of it. `body` is the storage codec of
-- weft_config::event::codec.
CREATE TABLE events (
    id   INTEGER PRIMARY KEY,
    body BLOB    NOT NULL
);

-- One cursor per trigger: every event with a sequence number <= seq is done.
CREATE TABLE cursors (
    broker_id INTEGER NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (broker_id, namespace, name)
);

-- Parked events name their broker rather than reference it: they outlive its log.
CREATE TABLE parked (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    broker_namespace  TEXT    NOT NULL,
    broker_name       TEXT    NOT NULL,
    trigger_namespace TEXT    NOT NULL,
    trigger_name      TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    -- Milliseconds since the Unix epoch.
    parked_at         INTEGER NOT NULL,
    body              BLOB    NOT NULL
);

CREATE INDEX parked_by_broker ON parked (broker_namespace, broker_name, id);
