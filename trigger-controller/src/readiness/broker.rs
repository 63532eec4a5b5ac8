//! A Broker's conditions: `Valid`, `DeadLetterSinkResolved`, `TriggerChannelReady`,
//! `Addressable` and `Ready`.

use super::{
    Condition, ConditionType, Fallback, Readiness, Reason, Resolution, Storage, dead_letter_sink,
};

/// What a control plane knows about a Broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerFacts<'a> {
    /// The validation's verdict: `Err` holds its problems in one line.
    pub spec: Result<(), &'a str>,
    /// `spec.delivery.deadLetterSink`.
    pub dead_letter_sink: Resolution<'a>,
    /// The broker's log in the channel.
    pub log: Storage<'a>,
    /// What keeps running while the spec is invalid.
    pub fallback: Fallback,
}

/// The conditions of a Broker with `facts`.
pub fn broker(facts: &BrokerFacts<'_>) -> Readiness {
    let invalid = facts.spec.err().map(|problems| {
        let message = match facts.fallback {
            Fallback::NotKnown => problems.to_owned(),
            Fallback::LastValid => format!("{problems}; the last valid version keeps running"),
            Fallback::LogKept => format!(
                "{problems}; its log is kept and still accepts events, which wait until the \
                 broker is fixed"
            ),
            Fallback::Nothing => format!("{problems}; it accepts no events until fixed"),
        };
        Condition::fails(ConditionType::Valid, Reason::InvalidBroker, message)
    });
    let log = match facts.log {
        Storage::Ready => Condition::holds(ConditionType::TriggerChannelReady),
        Storage::Failed(why) => Condition::fails(
            ConditionType::TriggerChannelReady,
            Reason::ChannelUnavailable,
            why,
        ),
        Storage::NotTried if facts.spec.is_err() => Condition::waits(
            ConditionType::TriggerChannelReady,
            Reason::InvalidBroker,
            "the broker is not valid",
        ),
        Storage::NotTried => Condition::waits(
            ConditionType::TriggerChannelReady,
            Reason::ChannelUnavailable,
            "the log is not created yet",
        ),
    };
    let parts = vec![
        invalid
            .clone()
            .unwrap_or_else(|| Condition::holds(ConditionType::Valid)),
        dead_letter_sink(facts.dead_letter_sink, Reason::InvalidBroker),
        log,
        Condition::holds(ConditionType::Addressable),
    ];
    Readiness::summed(parts, invalid)
}
