-- The SQLite channel: one append-only log per broker, one cursor per trigger, and the
-- events kept for the operator because they could be neither delivered nor dead-lettered.

-- A broker's log. AUTOINCREMENT so that a deleted and re-created broker never gets the
-- id of the old one (a subscription on the old log must not read the new one).
CREATE TABLE brokers (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    -- The highest sequence number ever appended; kept here because retention may delete
    -- every event, and numbering must continue after a restart.
    head      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (namespace, name)
);

-- Events in append order, numbered 1, 2, 3, ... per broker. `body` is the storage codec
-- of weft_config::event::codec.
CREATE TABLE events (
    broker_id INTEGER NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    body      BLOB    NOT NULL,
    PRIMARY KEY (broker_id, seq)
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
