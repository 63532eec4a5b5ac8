//! A Trigger's conditions: `BrokerReady`, `SubscriberResolved`, `DeadLetterSinkResolved`,
//! `SubscriptionReady` and `Ready`.

use super::{
    Condition, ConditionType, Fallback, Readiness, Reason, Resolution, Storage, dead_letter_sink,
};

/// How a Trigger's Broker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerState<'a> {
    /// It is ready: its log exists.
    Ready,
    /// It exists but is not ready, for this reason.
    NotReady(&'a str),
    /// It exists; whether it is ready is not known yet (no status yet, or the trigger's
    /// spec is too broken to name it).
    Unknown,
    /// No Broker of that name exists (the name given).
    Missing(&'a str),
}

/// What a control plane knows about a Trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TriggerFacts<'a> {
    /// The validation's verdict: `Err` holds its problems in one line.
    pub spec: Result<(), &'a str>,
    /// Its Broker.
    pub broker: BrokerState<'a>,
    /// `spec.subscriber`.
    pub subscriber: Resolution<'a>,
    /// `spec.delivery.deadLetterSink`, or the Broker's.
    pub dead_letter_sink: Resolution<'a>,
    /// Its cursor in the Broker's log (and, standalone, its running dispatcher).
    pub subscription: Storage<'a>,
    /// What keeps delivering while the spec is invalid.
    pub fallback: Fallback,
}

/// The conditions of a Trigger with `facts`.
pub fn trigger(facts: &TriggerFacts<'_>) -> Readiness {
    let subscription = ConditionType::SubscriptionReady;
    let invalid = facts.spec.err().map(|problems| {
        let message = match facts.fallback {
            Fallback::LastValid => format!("{problems}; the last valid version keeps delivering"),
            Fallback::NotKnown | Fallback::LogKept | Fallback::Nothing => problems.to_owned(),
        };
        Condition::fails(subscription, Reason::InvalidTrigger, message)
    });
    let broker = match facts.broker {
        BrokerState::Ready => Condition::holds(ConditionType::BrokerReady),
        BrokerState::NotReady(why) => {
            Condition::fails(ConditionType::BrokerReady, Reason::BrokerNotReady, why)
        }
        BrokerState::Unknown => Condition::waits(
            ConditionType::BrokerReady,
            Reason::BrokerUnknown,
            "whether the broker is ready is not known yet",
        ),
        BrokerState::Missing(name) => Condition::fails(
            ConditionType::BrokerReady,
            Reason::BrokerDoesNotExist,
            format!("Broker {name:?} does not exist"),
        ),
    };
    let subscriber = match facts.subscriber {
        Resolution::Resolved | Resolution::NotConfigured => {
            Condition::holds(ConditionType::SubscriberResolved)
        }
        Resolution::Failed(why) => Condition::fails(
            ConditionType::SubscriberResolved,
            Reason::SubscriberResolveFailed,
            why,
        ),
        Resolution::NotLooked => Condition::waits(
            ConditionType::SubscriberResolved,
            Reason::InvalidTrigger,
            "the spec is not valid",
        ),
    };
    let subscribed = match (&invalid, facts.subscriber, facts.broker, facts.subscription) {
        (Some(invalid), ..) => invalid.clone(),
        (None, Resolution::Failed(_) | Resolution::NotLooked, ..) => Condition::waits(
            subscription,
            Reason::SubscriberResolveFailed,
            "waiting for the subscriber's URL",
        ),
        (None, _, BrokerState::Ready, Storage::Ready) => Condition::holds(subscription),
        (None, _, BrokerState::Ready, Storage::Failed(why)) => {
            Condition::fails(subscription, Reason::ChannelUnavailable, why)
        }
        (None, _, BrokerState::Ready, Storage::NotTried) => Condition::waits(
            subscription,
            Reason::ChannelUnavailable,
            "the trigger's cursor is not created yet",
        ),
        (None, ..) => Condition::waits(
            subscription,
            Reason::BrokerNotReady,
            "waiting for the broker's log",
        ),
    };
    let parts = vec![
        broker,
        subscriber,
        dead_letter_sink(facts.dead_letter_sink, Reason::InvalidTrigger),
        subscribed,
    ];
    Readiness::summed(parts, invalid)
}
