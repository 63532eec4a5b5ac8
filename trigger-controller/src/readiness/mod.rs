//! Readiness: Knative conditions from facts, one pure function per kind.
//!
//! Both control planes gather what they know about an object and call [`broker()`] or
//! [`trigger()`] for its conditions: `weft up`'s reconciler ([`crate::reconcile`]) from the
//! manifests and its own data plane, the Kubernetes controller
//! ([`crate::cluster::controller`]) from the API server and the channel. They only gather
//! facts and write the answer (the status board behind `weft get`, or the object's
//! `status`), so the same manifest shows the same reasons in `weft get` and `kubectl get`.
//!
//! Nothing here does I/O or reads the clock; the table tests in `tests.rs` cover every rule.
//! A new kind adds its facts, one function and its tests here.
//!
//! The rules every kind shares: a condition type per dependency, each `True`, `False` (with
//! a reason) or `Unknown` (waiting); `Ready` is `False` with the validation's reason when
//! the spec is invalid, else takes the first `False` condition, else the first `Unknown`,
//! else is `True`.

mod broker;
mod trigger;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use weft_config::crd;

pub use broker::{BrokerFacts, broker};
pub use trigger::{BrokerState, TriggerFacts, trigger};

/// The condition types Weft writes, as Knative names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    /// A Broker has an address producers post to.
    Addressable,
    /// A Trigger's Broker is ready.
    BrokerReady,
    /// The dead-letter sink resolved to a URL, or none is configured.
    DeadLetterSinkResolved,
    /// Sums up the others.
    Ready,
    /// A Trigger's subscriber resolved to a URL.
    SubscriberResolved,
    /// A Trigger's cursor exists in the Broker's log (and, standalone, its dispatcher runs).
    SubscriptionReady,
    /// A Broker's log exists in the channel.
    TriggerChannelReady,
    /// A Broker's spec passed validation.
    Valid,
}

impl ConditionType {
    /// The type as written in `status.conditions[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Addressable => "Addressable",
            ConditionType::BrokerReady => "BrokerReady",
            ConditionType::DeadLetterSinkResolved => "DeadLetterSinkResolved",
            ConditionType::Ready => crd::READY,
            ConditionType::SubscriberResolved => "SubscriberResolved",
            ConditionType::SubscriptionReady => "SubscriptionReady",
            ConditionType::TriggerChannelReady => "TriggerChannelReady",
            ConditionType::Valid => "Valid",
        }
    }
}

/// Why a condition is not `True` (or, for `DeadLetterSinkNotConfigured`, why it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The Broker's spec is invalid.
    InvalidBroker,
    /// The Trigger's spec is invalid (filters included: they are compiled by validation).
    InvalidTrigger,
    /// The Trigger's Broker does not exist.
    BrokerDoesNotExist,
    /// The Trigger's Broker exists but is not ready.
    BrokerNotReady,
    /// Whether the Trigger's Broker is ready is not known yet.
    BrokerUnknown,
    /// The subscriber's ref did not resolve.
    SubscriberResolveFailed,
    /// The dead-letter sink's ref did not resolve.
    DeadLetterSinkResolveFailed,
    /// No dead-letter sink is configured (on a `True` condition, as Knative writes it).
    DeadLetterSinkNotConfigured,
    /// The channel could not create or open the object's storage.
    ChannelUnavailable,
    /// The object was deleted while its storage held events; the storage is kept.
    Retained,
}

impl Reason {
    /// The reason as written in `status.conditions[].reason` and shown by `weft get`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidBroker => "InvalidBroker",
            Reason::InvalidTrigger => "InvalidTrigger",
            Reason::BrokerDoesNotExist => "BrokerDoesNotExist",
            Reason::BrokerNotReady => "BrokerNotReady",
            Reason::BrokerUnknown => "BrokerUnknown",
            Reason::SubscriberResolveFailed => "SubscriberResolveFailed",
            Reason::DeadLetterSinkResolveFailed => "DeadLetterSinkResolveFailed",
            Reason::DeadLetterSinkNotConfigured => "DeadLetterSinkNotConfigured",
            Reason::ChannelUnavailable => "ChannelUnavailable",
            Reason::Retained => "Retained",
        }
    }

    /// Whether the cause may go away by itself (a ref that appears, a channel that comes
    /// back), so the object is worth looking at again soon rather than at the next change.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Reason::BrokerUnknown
                | Reason::SubscriberResolveFailed
                | Reason::DeadLetterSinkResolveFailed
                | Reason::ChannelUnavailable
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a condition holds.
pub use weft_config::crd::ConditionStatus as Status;

/// One decided condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// Its type.
    pub type_: ConditionType,
    /// Whether it holds.
    pub status: Status,
    /// Why (always set unless `True`).
    pub reason: Option<Reason>,
    /// A sentence for people.
    pub message: Option<String>,
}

impl Condition {
    /// `type_` holds.
    pub fn holds(type_: ConditionType) -> Self {
        Condition {
            type_,
            status: Status::True,
            reason: None,
            message: None,
        }
    }

    /// `type_` does not hold, for `reason`.
    pub fn fails(type_: ConditionType, reason: Reason, message: impl Into<String>) -> Self {
        Condition {
            type_,
            status: Status::False,
            reason: Some(reason),
            message: Some(message.into()),
        }
    }

    /// Whether `type_` holds is not known yet, for `reason`.
    pub fn waits(type_: ConditionType, reason: Reason, message: impl Into<String>) -> Self {
        Condition {
            type_,
            status: Status::Unknown,
            reason: Some(reason),
            message: Some(message.into()),
        }
    }

    /// Sets the reason and message (of a `True` condition, e.g. no dead-letter sink).
    fn because(mut self, reason: Reason, message: impl Into<String>) -> Self {
        self.reason = Some(reason);
        self.message = Some(message.into());
        self
    }

    /// Whether the condition holds.
    pub fn is_true(&self) -> bool {
        self.status == Status::True
    }

    /// The condition as the `status` of an object spells it, without a transition time.
    pub fn to_crd(&self) -> crd::Condition {
        crd::Condition {
            reason: self.reason.map(|r| r.as_str().to_owned()),
            message: self.message.clone(),
            ..crd::Condition::new(self.type_.as_str(), self.status)
        }
    }
}

/// An object's conditions, `Ready` included, sorted by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    conditions: Vec<Condition>,
}

impl Readiness {
    /// Sums `parts` up in `Ready`. `invalid` is the validation's verdict: when set, `Ready`
    /// says so whatever else fails.
    fn summed(mut parts: Vec<Condition>, invalid: Option<Condition>) -> Self {
        parts.sort_by_key(|c| c.type_);
        let ready = invalid
            .or_else(|| parts.iter().find(|c| c.status == Status::False).cloned())
            .or_else(|| parts.iter().find(|c| c.status == Status::Unknown).cloned())
            .map(|c| Condition {
                type_: ConditionType::Ready,
                ..c
            })
            .unwrap_or_else(|| Condition::holds(ConditionType::Ready));
        parts.push(ready);
        parts.sort_by_key(|c| c.type_);
        Readiness { conditions: parts }
    }

    /// Only `Ready`, false for `reason`: an object that is not running any more (deleted,
    /// its storage retained).
    pub fn only_ready(reason: Reason, message: impl Into<String>) -> Self {
        Readiness {
            conditions: vec![Condition::fails(ConditionType::Ready, reason, message)],
        }
    }

    /// Every condition, sorted by type.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The `Ready` condition.
    pub fn ready(&self) -> &Condition {
        self.get(ConditionType::Ready)
            .expect("a readiness always has a Ready condition")
    }

    /// The condition of `type_`, if decided.
    pub fn get(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the object is ready.
    pub fn is_ready(&self) -> bool {
        self.ready().is_true()
    }

    /// Whether a condition waits for something that may change by itself: look again soon.
    pub fn waiting(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| !c.is_true() && c.reason.is_some_and(Reason::is_transient))
    }

    /// Puts these conditions into `conditions` (an object's status), keeping the
    /// transition time of each whose status did not change. Returns whether anything
    /// changed.
    pub fn write_into(&self, conditions: &mut Vec<crd::Condition>, now: DateTime<Utc>) -> bool {
        let mut changed = false;
        for condition in &self.conditions {
            changed |= crd::set_condition(conditions, condition.to_crd(), now);
        }
        changed
    }
}

/// How a dependency given by a ref (a subscriber, a dead-letter sink) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// None is configured (a dead-letter sink is optional).
    NotConfigured,
    /// Resolved to a URL.
    Resolved,
    /// Could not be resolved, for this reason.
    Failed(&'a str),
    /// Not looked at: the spec is invalid.
    NotLooked,
}

/// How an object's storage (a log, a cursor and its dispatcher) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage<'a> {
    /// It exists (and runs).
    Ready,
    /// The channel failed, for this reason.
    Failed(&'a str),
    /// Not tried: something it needs is missing.
    NotTried,
}

/// What keeps running while the spec is invalid; known standalone, where the same process
/// runs the data plane. It is said after the validation's message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Not known here (the Kubernetes controller does not run the data plane).
    #[default]
    NotKnown,
    /// The last valid version keeps running (a broker) or delivering (a trigger).
    LastValid,
    /// A broker that was never valid here still has its log, which accepts events.
    LogKept,
    /// Nothing runs until it is fixed.
    Nothing,
}

/// The conditions of a `DeadLetterSinkResolved` fact, for `invalid` (the kind's reason).
fn dead_letter_sink(sink: Resolution<'_>, invalid: Reason) -> Condition {
    let type_ = ConditionType::DeadLetterSinkResolved;
    match sink {
        Resolution::NotConfigured => Condition::holds(type_).because(
            Reason::DeadLetterSinkNotConfigured,
            "no dead-letter sink is configured",
        ),
        Resolution::Resolved => Condition::holds(type_),
        Resolution::Failed(why) => {
            Condition::fails(type_, Reason::DeadLetterSinkResolveFailed, why)
        }
        Resolution::NotLooked => Condition::waits(type_, invalid, "the spec is not valid"),
    }
}
