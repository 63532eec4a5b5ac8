//! The embedded default channel: one SQLite file holds every broker's log.
//!
//! # URL
//! `sqlite://PATH[?synchronous=full|normal]`: `sqlite:///var/lib/weft/weft.db` (absolute)
//! or `sqlite://data/weft.db` (relative to the working directory). The file and its parent
//! directories are created if missing. `synchronous=full` (the default) syncs the
//! write-ahead log on every commit; `synchronous=normal` leaves that to the checkpoints:
//! an acknowledged event still survives a crash of any process (it is in the operating
//! system's cache), but a power loss or kernel crash may lose the last acknowledged ones.
//!
//! # Guarantees
//! - **Durability**: `append` returns once its transaction is committed in WAL mode with
//!   `synchronous=FULL`, so the events survive a crash of the process or the machine
//!   (with `synchronous=normal`: of the process only).
//!   Concurrent appends share one commit (group commit, see `writer`); a lone append
//!   commits at once.
//! - **Ordering**: a broker's events are numbered 1, 2, 3, … in append order (numbering
//!   continues across restarts and retention) and every subscription hands them out in
//!   that order.
//! - **At-least-once**: a trigger's cursor (table `cursors`) means "every event up to here
//!   is done". It advances only to just below the lowest unacknowledged event
//!   ([`crate::ack`]) and is persisted lazily: with the next group commit (no extra
//!   sync), at the latest 100 ms later on its own, and on close. After a restart,
//!   or when the trigger subscribes again, everything above the persisted cursor is
//!   delivered again.
//! - **Redelivery** is the same event again (same `id`), with no marker.
//! - **Replicas** cannot share a file: one process owns it. Several subscriptions of one
//!   trigger in that process each receive every event above the cursor.
//! - **Retention**: twice a second, events that every cursor of their broker has passed
//!   are deleted, oldest first and at most 4096 per log per run so a released backlog
//!   never stalls appends; while a run leaves some behind, runs come every 50 ms, so
//!   retention keeps up with any rate the log is written at. A broker without cursors
//!   keeps none (a new trigger starts at the end). Parked events are kept until an
//!   operator removes them, even after their broker is deleted.
//! - **Checkpoints** are SQLite's own: the writer copies the write-ahead log back into the
//!   database file after a commit that leaves it above 1,000 pages (about 4 MiB), and the
//!   log then starts over, so it stays small under any load. The appends that arrive
//!   meanwhile wait and share the next group commit. (A checkpointer on a connection of
//!   its own never caught up with a busy writer: the log then grew without bound, by
//!   hundreds of MiB a minute, and its large syncs stalled commits for up to 2 s.)
//!
//! # Layout
//! - [`SqliteChannel`] (`channel`): the [`Channel`](crate::Channel) implementation,
//!   opening, status queries.
//! - `shared`: what the channel, its subscriptions and the writer share (brokers' heads,
//!   live cursors, event keys).
//! - `url`: the URL and [`database_file`].
//! - `subscription`: the read side, a trigger's subscription.
//! - `writer`: the single task that writes (group commit, cursor flush, retention).
//! - `migrations/sqlite/` (crate root) holds the schema, `sql/` the statements.

mod channel;
mod shared;
mod subscription;
mod url;
mod writer;

pub use channel::SqliteChannel;
pub use url::database_file;
