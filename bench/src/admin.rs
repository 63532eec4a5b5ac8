//! A broker's and a trigger's status as the admin API reports them (`GET /_weft/v1/brokers`,
//! `GET /_weft/v1/triggers`) and `weft get … -o json` prints them: read from JSON, as a user
//! or a script would, not taken from the crates that write it.

use serde::Deserialize;

/// A broker as `GET /_weft/v1/brokers` (and `weft get brokers -o json`) reports it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct BrokerStatus {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Whether it accepts events.
    pub ready: bool,
    /// Why it is not ready.
    pub reason: Option<String>,
    /// The ingress URL, `http://…/<namespace>/<name>`.
    pub address: String,
}

/// A trigger as `GET /_weft/v1/triggers` (and `weft get triggers -o json`) reports it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct TriggerStatus {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The broker it subscribes to.
    pub broker: String,
    /// Whether it routes events.
    pub ready: bool,
    /// Why it is not ready.
    pub reason: Option<String>,
    /// The subscriber URL.
    pub subscriber: Option<String>,
    /// Events stored but not yet finished for this trigger.
    pub backlog: u64,
    /// Events its subscriber accepted.
    pub delivered: u64,
    /// Events sent to its dead-letter sink.
    pub dead_lettered: u64,
    /// Deliveries allowed in flight now (narrowed while the sink keeps failing).
    pub in_flight_window: u64,
}
