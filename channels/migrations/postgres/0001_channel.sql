-- The PostgreSQL channel: one append-only log per broker, one cursor per trigger, the
-- leases through which several Weft processes share a trigger, and the events kept for the
-- operator because they could be neither delivered nor dead-lettered. Every name starts
-- with `weft_` so the tables can live in a database (or schema) shared with other software.

-- A broker's log. Appends lock its row (`head = head + n`), which numbers the events and
-- serializes appenders of one broker across processes, so that a committed head means
-- every event up to it is committed. Identity ids are never reused: a deleted and
-- re-created broker is a different log.
CREATE TABLE weft_brokers (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    -- The highest sequence number appended; never moves back, so numbering continues
    -- after retention has deleted every event.
    head      BIGINT NOT NULL DEFAULT 0,
    UNIQUE (namespace, name)
);

-- Events in append order, numbered 1, 2, 3, ... per broker. A log is one contiguous range
-- of the primary key: appends go to its end, retention deletes a prefix. `body` is the
-- storage codec of weft_config::event::codec. No foreign key: deleting a broker deletes
-- its events explicitly, and appends skip the check.
CREATE TABLE weft_events (
    broker_id BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    body      BYTEA  NOT NULL,
    PRIMARY KEY (broker_id, seq)
);

-- One cursor per trigger.
CREATE TABLE weft_cursors (
    broker_id BIGINT NOT NULL REFERENCES weft_brokers (id) ON DELETE CASCADE,
    namespace TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    -- Every event with a sequence number <= seq is done (delivered, dead-lettered, parked
    -- or filtered out). Backlog and retention are measured from here.
    seq       BIGINT NOT NULL,
    -- Every event <= claimed is done or covered by a lease; consumers claim new ranges
    -- from here. seq <= claimed <= the broker's head.
    claimed   BIGINT NOT NULL,
    PRIMARY KEY (broker_id, namespace, name)
);

-- Ranges of a trigger's events claimed by a consumer (a subscription in some process)
-- and not all done yet. A lease whose holder released it (holder NULL) or stopped
-- renewing it (expires_at passed) is taken over by another consumer, which delivers its
-- events again.
CREATE TABLE weft_leases (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    broker_id  BIGINT      NOT NULL,
    namespace  TEXT        NOT NULL,
    name       TEXT        NOT NULL,
    -- Events lo..=hi; lo moves up as its holder finishes them in order.
    lo         BIGINT      NOT NULL,
    hi         BIGINT      NOT NULL,
    -- Who holds it, for the operator; NULL once released.
    holder     TEXT,
    -- Bumped whenever the lease changes hands: a former holder's late progress or renewal
    -- names the old epoch and changes nothing.
    epoch      BIGINT      NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (broker_id, namespace, name) REFERENCES weft_cursors ON DELETE CASCADE
);

CREATE INDEX weft_leases_by_trigger ON weft_leases (broker_id, namespace, name, lo);

-- Parked events name their broker rather than reference it: they outlive its log.
CREATE TABLE weft_parked (
    id                BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    broker_namespace  TEXT        NOT NULL,
    broker_name       TEXT        NOT NULL,
    trigger_namespace TEXT        NOT NULL,
    trigger_name      TEXT        NOT NULL,
    reason            TEXT        NOT NULL,
    parked_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    body              BYTEA       NOT NULL
);

CREATE INDEX weft_parked_by_broker ON weft_parked (broker_namespace, broker_name, id);
