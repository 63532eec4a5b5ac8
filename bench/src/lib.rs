//! weft-bench: `weft bench`, the load generator, receiver and baselines that measure Weft,
//! and the suite that writes `BENCHMARKS.md`; with them, the tools that drive the `weft`
//! binary from outside, which the end-to-end tests (`weft-e2e`) build on too.
//!
//! It is not the data plane and does not link it: it depends only on `weft-config`'s
//! CloudEvent type and HTTP binding, and treats `weft up` as a black box reached over HTTP
//! and its stdout. The `weft` binary only parses `weft bench` arguments and calls in here.
//!
//! Every figure is meant to be read as a ratio to a baseline measured in the same run on
//! the same machine: a bare HTTP handler for ingest, a stateless forwarder for end-to-end
//! delivery. The generator shares the machine with what it measures, so it is kept lean
//! (see [`load`]).
//!
//! Start reading at [`load::run`] (one load run) and [`e2e::run`] (sender, system and
//! receiver together); [`suite::run`] strings the standard scenarios together.
//!
//! # Layout
//! - [`load`]: open-loop (fixed rate, no coordinated omission) and closed-loop generators
//!   of binary-mode CloudEvents over keep-alive hyper connections; [`load::IngestReport`].
//! - [`receive`]: [`receive::Receiver`], a sink that counts events and duplicates per path
//!   and measures end-to-end latency from the sender's `benchts` extension.
//! - [`baseline`]: the bare 202 handler and the stateless forwarder.
//! - [`process`]: `weft up` and the baselines as child processes, with CPU and memory; what
//!   `weft up` prints when it serves, and stopping a process with SIGTERM (shared with the
//!   e2e tests).
//! - [`admin`]: a broker's and a trigger's status as the admin API (`/_weft/v1/…`) and
//!   `weft get -o json` report them.
//! - [`manifest`]: builders for Broker and Trigger YAML as a user writes it
//!   ([`broker`], [`trigger`], [`Delivery`]).
//! - [`e2e`]: one end-to-end run and its report: lost, duplicates, throughput, latency.
//! - [`suite`]: the standard scenarios, per channel, and the markdown they produce.
//! - [`chart`]: SVG charts of throughput and latency against offered load.
//! - [`report`]: histograms and their summaries, id bitmaps, machine facts, progress line.
//!
//! The scripts next to this crate (`bench/*.sh`) run the suite, idle-memory and profiling
//! measurements around the binary; their results are in `BENCHMARKS.md`.

pub mod admin;
pub mod baseline;
pub mod chart;
pub mod e2e;
pub mod load;
pub mod manifest;
pub mod process;
pub mod receive;
pub mod report;
pub mod suite;

pub use manifest::{Delivery, broker, documents, trigger};

use std::path::PathBuf;
use std::time::Duration;

/// Why a bench run could not be carried out. (What it measured, failures of the system
/// under test included, is a report, not an error.)
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A target or sink URL that the generator cannot use.
    #[error("invalid url `{url}`: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The generator could not open its connections to the target.
    #[error("connect to {url}: {source}")]
    Connect {
        /// The target.
        url: String,
        /// The connection error.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The bind error.
        source: std::io::Error,
    },
    /// A server stopped with an error.
    #[error("serve: {source}")]
    Serve {
        /// The accept or I/O error.
        source: std::io::Error,
    },
    /// A child process (`weft up`, a baseline) did not start or did not come up.
    #[error("start {what}: {reason}")]
    Start {
        /// Which process.
        what: String,
        /// Why, with its log where there is one.
        reason: String,
    },
    /// The admin API of `weft up` did not answer as expected.
    #[error("query {url}: {reason}")]
    Admin {
        /// The admin URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("{what}: not done within {timeout:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the wait was.
        timeout: Duration,
    },
    /// Options that do not fit together.
    #[error("invalid options: {reason}")]
    Options {
        /// Which and why.
        reason: String,
    },
    /// A report or chart could not be written.
    #[error("write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
