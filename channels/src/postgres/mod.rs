//! A channel in PostgreSQL, shared by every Weft process that opens the same database.
//!
//! # URL
//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]` (or `postgresql://`). Query
//! parameters are those of sqlx (`sslmode`, `options=-c search_path=weft`,
//! `application_name`, …) plus Weft's own:
//! - `lease=PT30S` (ISO-8601, default 30 s): how long a consumer's claim on a range of
//!   events outlives its last renewal; after a crash, that is how long its unfinished
//!   events wait before another process delivers them.
//!
//! Weft creates its tables itself (migrations in `migrations/postgres/`, recorded in
//! `weft_migrations`); every name starts with `weft_`, so a database or schema can be shared
//! with other software. Several processes may open the same database at once. Tested with
//! PostgreSQL 15; the SQL needs 10 or newer.
//!
//! # Guarantees
//! - **Durability**: `append` returns once its transaction is committed (with the server's
//!   `synchronous_commit`, by default on: flushed to the server's WAL). Concurrent appends
//!   in a process share one transaction (group commit, see `writer`); a lone append
//!   commits at once. So do new cursors, parked events and deletions. The bookkeeping of
//!   leases and cursors commits with `synchronous_commit = off` (it does not wait for the
//!   server's disk): a server crash may lose its last moments, which only means
//!   redelivery; the server recovers a prefix of its log, so that bookkeeping is never
//!   ahead of the appends it describes.
//! - **Ordering**: a broker's events are numbered 1, 2, 3, … in commit order, across
//!   processes: an append locks the broker's row (`head = head + n`), so appenders of one
//!   broker queue there and a committed head means every event up to it is committed.
//!   Numbering continues across restarts and retention. A consumer hands out its claimed
//!   ranges in order, so one consumer sees every partition key in append order; events
//!   taken over from a vanished consumer (below) come back after newer ones.
//! - **At-least-once**: a trigger's work is split into *leases* (table `weft_leases`):
//!   ranges of events a consumer (one subscription) claimed, renewed while it lives. A
//!   lease shrinks from its low end as its events are acknowledged in order and is deleted
//!   when all are done. The cursor (`weft_cursors.seq`, "everything up to here is done")
//!   is just below the trigger's lowest lease; backlog and retention count from it.
//!   Progress is written every 50 ms, when `backlog` is asked, and on close; a crash loses
//!   at most that much of it, which only means redelivery.
//! - **Redelivery** is the same event again (same `id`), with no marker. It happens to the
//!   unacknowledged events of a lease whose consumer ended (the subscription and its
//!   unacknowledged deliveries were dropped: the lease is released at once) or vanished
//!   (process killed, or cut off from the database for longer than the lease: another
//!   consumer takes the lease over once it expires). Events acknowledged out of order
//!   above an unacknowledged one are delivered again with it.
//! - **Replicas** share a trigger: every subscription of it, in any process, claims the
//!   next range (optimistically: the claim applies only if the trigger's `claimed` mark is
//!   unchanged) or takes over a released or expired lease (`FOR UPDATE SKIP LOCKED`), so in
//!   normal operation each event goes to exactly one of them. Ranges are at least 32 events,
//!   or what `next` asked for. Ordered delivery holds per consumer, not across them.
//! - **Wake-ups**: after each group commit the writer notifies `weft_events`
//!   (`LISTEN/NOTIFY`), which wakes the log's waiting subscriptions in every process; so
//!   does a released lease.
//!   Idle subscriptions issue no queries: once a second, each process's keeper looks at
//!   the logs it has subscriptions on and wakes those whose head moved or that have a lease
//!   to take over, which is how expired leases are noticed (about a second after they
//!   expire) and what covers for notifications missed while the listening connection was
//!   re-established.
//! - **Reads**: a subscription takes the events this process appended lately (per log with
//!   subscriptions here, the latest 4096, at most 2 MiB) from memory, and the rest from the
//!   database; with many triggers on a broker that spares a read per trigger and event.
//! - **Unavailability**: when the server cannot be reached, calls fail within a few seconds
//!   with a retriable error ([`ChannelError::Unavailable`] or [`ChannelError::Append`]);
//!   the pools reconnect, the background tasks retry, and the channel recovers by itself.
//!   After a server restart, a statement that finds its pooled connection dead is tried
//!   again on another, so callers see nothing once the server is back (an append whose
//!   connection broke after its commit is then stored twice: at least once).
//! - **Retention**: twice a second each process deletes, per log, events that every cursor
//!   has passed, oldest first and at most 4096 per log per run; a broker without cursors
//!   keeps none (a new trigger starts at the end). Parked events are kept until an
//!   operator removes them, even after their broker is deleted.
//! - A subscription whose trigger's cursor is deleted while it runs hands out nothing more.
//!
//! # Layout
//! - [`PostgresChannel`] (`channel`): opening, status queries, its
//!   [`Channel`](crate::Channel) implementation.
//! - `consts`: what the modules share: the metrics label, the notification channel and
//!   payloads, the pool size.
//! - `shared`: what the channel, its subscriptions and its tasks share; `tail`: the events
//!   this process appended lately, kept for its subscriptions.
//! - `url`: the URL and its parameters; `retry`: statements tried again on a dead
//!   connection, and database errors as [`ChannelError`]s.
//! - `writer`: the task that appends (group commit).
//! - `consumer`: a trigger's subscription, its leases and acknowledgements.
//! - `progress`: what consumers and the channel send the keeper.
//! - `keeper`: the task that records progress, renews and releases leases, and applies
//!   retention.
//! - `listener`: `LISTEN weft_events`, turning notifications into wake-ups.
//! - `migrations/postgres/` (crate root) holds the schema, `sql/` the statements.
//!
//! [`ChannelError`]: crate::ChannelError
//! [`ChannelError::Append`]: crate::ChannelError::Append
//! [`ChannelError::Unavailable`]: crate::ChannelError::Unavailable

mod channel;
mod consts;
mod consumer;
mod keeper;
mod listener;
mod progress;
mod retry;
mod shared;
mod tail;
mod url;
mod writer;

pub use channel::PostgresChannel;
