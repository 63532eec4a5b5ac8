//! weft-e2e: the harness for end-to-end tests that drive the real `weft` binary the way a
//! user does — manifests in a folder, events over HTTP, a sink that records what arrives,
//! `kill -9` and restart on the same data directory.
//!
//! It is not a place for unit tests of the crates: those live next to their code. Anything
//! here treats `weft` as a black box and checks only what a user could observe (status
//! codes, the events a sink received, what `weft get` prints).
//! Its fixtures are written once for the whole workspace: weft-broker's tests use the same
//! [`Sink`] and [`event`] builder.
//!
//! Start reading at [`Weft`] (the process under test) and [`Sink`] (the subscriber);
//! `tests/delivery.rs` shows them used together.
//!
//! # Layout
//! - [`weft`]: [`Weft`], the `weft up` process: temp manifests and data dirs, start, `kill -9`,
//!   restart, the admin API and the CLI.
//! - [`sink`]: [`Sink`], an HTTP server on `127.0.0.1:0` that records every request and
//!   answers from a script; async waiters for what it received.
//! - [`producer`]: [`Producer`], which POSTs events in each content mode, and [`event`], a
//!   builder for test events with unique ids.
//! - [`backend`]: [`Backend`], the real PostgreSQL, NATS and Kafka servers that
//!   `e2e/services/` runs: their URLs from the environment, per-test channel URLs, stopping
//!   and starting a server under a test.
//! - [`cluster`]: [`Cluster`], the real Kubernetes API server `e2e/services/up kube` runs,
//!   driven with `kubectl`; [`cluster::Role`], a `weft controller|ingress|dispatcher` process.
//!
//! Shared with `weft bench`, and re-exported here from the `weft-bench` crate (which this one
//! builds on; the `weft` binary links that crate, never this one):
//! - [`manifest`]: builders for Broker and Trigger YAML ([`broker`], [`trigger`], [`Delivery`]).
//! - [`BrokerStatus`], [`TriggerStatus`]: what the admin API and `weft get -o json` report.
//! - `weft_bench::process`: what `weft up` prints when it serves, and
//!   [`sigterm`](weft_bench::process::sigterm).

pub mod backend;
pub mod cluster;
pub mod producer;
pub mod sink;
pub mod weft;

pub use backend::Backend;
pub use cluster::Cluster;
pub use producer::{Producer, Sent, event};
pub use sink::{Received, Reply, Sink};
pub use weft::Weft;
pub use weft_bench::admin::{BrokerStatus, TriggerStatus};
pub use weft_bench::manifest::{self, Delivery, broker, documents, trigger};

use std::time::Duration;

/// Shorthand for a duration in milliseconds, which tests use a lot.
pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Shorthand for a duration in seconds.
pub fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}
