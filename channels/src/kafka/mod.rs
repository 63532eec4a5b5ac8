//! The Kafka channel: a topic per broker, a consumer group per trigger (feature `kafka`).
//!
//! # URL
//! `kafka://HOST:PORT[,HOST:PORT…][?partitions=N&replication=R&prefix=P&timeout_ms=T&linger_ms=L]`;
//! see `config` for each parameter and for how topics and groups are named
//! (`weft-broker-<namespace>.<name>`, `weft-broker-<namespace>.<name>/<namespace>.<trigger>`).
//! Weft creates what it needs with the admin API; it never relies on automatic topic
//! creation, so an append to a deleted broker cannot bring its topic back.
//!
//! # Guarantees
//! - **Durability**: `append` returns once Kafka acknowledged every record of the call
//!   with `acks=all` (every in-sync replica has it) from an idempotent producer, so a
//!   retry inside the producer never writes a record twice. Kafka, not Weft, decides how
//!   that reaches disk: with replication 1 a record survives a crash of Kafka's process
//!   but not of its machine before the page cache is flushed.
//! - **Group commit**: appends from concurrent requests share produce requests:
//!   librdkafka batches whatever is queued while earlier requests are in flight. No timer
//!   waits for more by default (`linger_ms=0`), so a lone event is sent at once;
//!   `linger_ms` can add such a wait.
//! - **Bounded failure**: when Kafka cannot take records, `append` fails after at most
//!   `timeout_ms` with [`ChannelError::Unavailable`] (the ingress answers 503, never
//!   202); librdkafka reconnects by itself and later appends succeed again. A failed
//!   append of several events may have stored some of them; the producer's retry then
//!   stores them again (at-least-once).
//! - **Ordering**: per partition. Events with a `partitionkey` go to the partition of
//!   their key (Kafka's `murmur2` partitioner, as Java clients and Knative use); the
//!   events of one append without a key all go to one partition, in order. Appends
//!   without a key share one partition for 10 ms, then move to the next, so concurrent
//!   appends fill one large batch and every partition gets its share over time. With
//!   `partitions=1` the whole log is ordered.
//! - **At-least-once**: a trigger's cursor is its consumer group's committed offsets.
//!   Per partition, an offset is committed only up to the lowest event still in flight
//!   ([`crate::ack`]), every 100 ms and when a partition is revoked or the subscription
//!   stops. After a restart, or when a partition moves to another member, everything
//!   above the committed offset is delivered again.
//! - **Redelivery** is the same record again (same `id`), with no marker.
//! - **New triggers** start at the end: a subscription of a group without offsets first
//!   commits the log's current end offsets, so it receives what is appended after
//!   `subscribe` returns, even before its first rebalance completes.
//! - **Replicas** share a trigger through its consumer group: every Weft process
//!   subscribing the trigger joins it, and Kafka spreads the partitions over them; a
//!   process that dies is replaced after the 10 s session timeout. See `subscription`
//!   for what a rebalance does to events in flight.
//! - **Retention** is Kafka's own (the topic's `retention.ms`, 7 days by default): Weft
//!   never deletes consumed records, and a cursor that falls behind retention resumes at
//!   the oldest record left.
//! - **Parked events** go to the topic `<prefix>-parked` (one partition, records keyed
//!   by broker), with headers `weft_broker`, `weft_trigger`, `weft_reason`; deleting a
//!   broker keeps them.
//! - **Records** follow the CloudEvents Kafka binding in binary mode (`binding`);
//!   records that are not CloudEvents are skipped with an error log.
//! - **Size**: records up to 4 MiB (topic `max.message.bytes`).
//!
//! # Layout
//! - [`KafkaChannel`] (`channel`): the [`Channel`](crate::Channel) implementation:
//!   topics, groups, appends, status.
//! - `shared`: what the channel's calls share; `log`: a broker's log as this process
//!   knows it.
//! - `client`: librdkafka's logs, transient errors and retries, Kafka errors as
//!   [`ChannelError`](crate::ChannelError)s.
//! - `config`: the URL and the naming of topics and groups.
//! - `binding`: the CloudEvents Kafka protocol binding: record key and value; the headers
//!   come from the shared `weft_config::event::headers`.
//! - `parked`: the records of parked events.
//! - `subscription`: a trigger's consumer, its offsets and rebalances.
//!
//! [`ChannelError::Unavailable`]: crate::ChannelError::Unavailable

mod binding;
mod channel;
mod client;
mod config;
mod log;
mod parked;
mod shared;
mod subscription;

pub use channel::KafkaChannel;
