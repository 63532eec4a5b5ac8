//! The NATS JetStream channel: a stream per broker, a durable pull consumer per trigger.
//!
//! # URL
//! `nats://HOST:PORT` (several servers comma-separated, `user:password@` allowed), with
//! optional query parameters:
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `prefix` | `weft` | starts every stream name and subject (`[A-Za-z0-9_-]`, ≤ 32) |
//! | `ack_wait` | `30s` | how soon an unacknowledged event goes to another replica if this one stops reporting progress |
//! | `max_ack_pending` | `1024` | a trigger's in-flight limit on the server, across replicas |
//! | `replicas` | `1` | stream replicas in a JetStream cluster |
//! | `timeout` | `5s` | how long a publish acknowledgement or API request may take |
//! | `max_age` | `0` (none) | how long a stream keeps an event whatever its triggers did; set it on servers before 2.9.16 |
//!
//! # Mapping (see `names` for the escaping of key parts)
//! - **Broker** → stream `<prefix>_<ns>_<name>` on subject `<prefix>.<ns>.<name>`, file
//!   storage, *interest* retention: a message is removed once every consumer acknowledged
//!   it, and one published while the broker has no trigger is not kept (Knative: with no
//!   triggers, events are not kept; a new trigger starts at the end). On servers before
//!   2.9.16, where interest retention loses acknowledged messages when the server shuts
//!   down, *limits* retention instead: events stay until `max_age` (see `retention`).
//! - **Trigger** → durable pull consumer `<ns>_<name>`: explicit acks, `DeliverPolicy::New`
//!   (evaluated when the consumer is created, so a new trigger starts at the end of the
//!   log), unlimited deliveries (Weft's dispatcher does its own retries and dead-lettering;
//!   the channel only delivers again what was never acknowledged), `ack_wait` and
//!   `max_ack_pending` from the URL.
//! - **Event** → one message in the CloudEvents NATS binding's binary mode (`binding`):
//!   `ce-*` headers, the data as payload.
//! - **Parked events** → stream `<prefix>_parked` (limits retention: kept until an operator
//!   removes them), subject `<prefix>._parked.<ns>.<broker>`, the event as above plus
//!   `weft-trigger` and `weft-reason` headers; the server's timestamp is `parked_at`.
//!
//! # Guarantees
//! - **Durability**: `append` returns once JetStream acknowledged every event (its
//!   `PubAck`), i.e. the events are in the stream's store (written to disk, synced as the
//!   server's `sync_interval` says; replicated when `replicas` > 1). An append sends all its
//!   events, then awaits all acknowledgements: concurrent appends share the connection and
//!   the server's writes, which is NATS's own group commit. If some acknowledgements fail
//!   the append fails, though some of its events may be stored; the producer's retry then
//!   stores them twice (at-least-once, never loss).
//! - **Ordering**: one append's events are sent back to back (appends from this process
//!   never interleave) and the stream numbers them in that order. A consumer hands events
//!   out in stream order; an event delivered again (after a `-NAK` or `ack_wait`) comes
//!   before newer ones but after those already handed out.
//! - **At-least-once, per event**: JetStream keeps an acknowledgement per event, not a
//!   cursor. An event is done when its [`AckHandle`](crate::AckHandle) acknowledges it
//!   (`+ACK`, confirmed by the server); out-of-order acknowledgements are kept as they are,
//!   so after a restart only the events never acknowledged are delivered again, and only
//!   those count in [`Channel::backlog`] (`num_pending + num_ack_pending`).
//! - **Redelivery** is the same message again (same `id`), with a higher delivery count
//!   in its JetStream metadata. It happens when an ack handle is dropped unacknowledged or a
//!   subscription is dropped with events it received but did not hand out (`-NAK`: at
//!   once), or when a process dies (after `ack_wait`). While a process works on an event
//!   (long retries included) it reports progress (`+WPI`) so that it is not redelivered
//!   under its feet.
//! - **Replicas** share a trigger through its durable consumer: each pull gets events no
//!   other pull got, so two processes (or two subscriptions) of one trigger split its
//!   events without doubling them; the events a dead process held go to the others after
//!   `ack_wait`. `max_ack_pending` bounds what all of them hold together.
//! - **Server down**: every operation fails within `timeout` with a retriable error
//!   ([`ChannelError::Append`] or [`ChannelError::Unavailable`], so the ingress answers
//!   503, never 202); the client reconnects by itself and pulls resume.
//! - **Not CloudEvents**: a message on a broker's subject that does not decode (published
//!   there by something else) is terminated (`+TERM`) and logged as an error, not handed
//!   out.
//!
//! # Layout
//! - [`NatsChannel`] (`channel`): the [`Channel`](crate::Channel) implementation.
//! - `shared`: what the channel and its subscriptions share; publishing.
//! - `config`: the URL. `names`: streams, subjects, consumers. `binding`: events as
//!   messages (headers from the shared `weft_config::event::headers`). `api`: JetStream management requests. `subscription`: pulling.
//!   `acks`: acknowledging, progress reports.
//!
//! [`Channel::backlog`]: crate::Channel::backlog
//! [`ChannelError::Append`]: crate::ChannelError::Append
//! [`ChannelError::Unavailable`]: crate::ChannelError::Unavailable

mod acks;
mod api;
mod binding;
mod channel;
mod config;
mod names;
mod retention;
mod shared;
mod subscription;

pub use channel::NatsChannel;
