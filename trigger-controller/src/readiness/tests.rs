//! Table tests: facts in, the conditions a user sees out (`weft get` shows `Ready`'s reason
//! and message; `kubectl get` every condition).

use super::*;

/// `(type, status, reason)` of each condition, sorted by type.
fn summary(readiness: &Readiness) -> Vec<(&'static str, Status, Option<&'static str>)> {
    readiness
        .conditions()
        .iter()
        .map(|c| (c.type_.as_str(), c.status, c.reason.map(Reason::as_str)))
        .collect()
}

fn ready(readiness: &Readiness) -> (Status, Option<&'static str>, String) {
    let ready = readiness.ready();
    (
        ready.status,
        ready.reason.map(Reason::as_str),
        ready.message.clone().unwrap_or_default(),
    )
}

const VALID_TRIGGER: TriggerFacts<'static> = TriggerFacts {
    spec: Ok(()),
    broker: BrokerState::Ready,
    subscriber: Resolution::Resolved,
    dead_letter_sink: Resolution::NotConfigured,
    subscription: Storage::Ready,
    fallback: Fallback::NotKnown,
};

const VALID_BROKER: BrokerFacts<'static> = BrokerFacts {
    spec: Ok(()),
    dead_letter_sink: Resolution::NotConfigured,
    log: Storage::Ready,
    fallback: Fallback::NotKnown,
};

#[test]
fn a_trigger_is_ready_when_everything_it_needs_is() {
    let readiness = trigger(&VALID_TRIGGER);
    assert!(readiness.is_ready());
    assert!(!readiness.waiting());
    assert_eq!(
        summary(&readiness),
        vec![
            ("BrokerReady", Status::True, None),
            (
                "DeadLetterSinkResolved",
                Status::True,
                Some("DeadLetterSinkNotConfigured")
            ),
            ("Ready", Status::True, None),
            ("SubscriberResolved", Status::True, None),
            ("SubscriptionReady", Status::True, None),
        ]
    );
}

#[test]
fn a_triggers_ready_reason_follows_the_first_thing_it_lacks() {
    let table: Vec<(&str, TriggerFacts<'_>, Status, &str, &str)> = vec![
        (
            "broker missing",
            TriggerFacts {
                broker: BrokerState::Missing("orders"),
                subscription: Storage::NotTried,
                ..VALID_TRIGGER
            },
            Status::False,
            "BrokerDoesNotExist",
            "Broker \"orders\" does not exist",
        ),
        (
            "broker not ready",
            TriggerFacts {
                broker: BrokerState::NotReady("spec.delivery.retry: must be at least 0"),
                subscription: Storage::NotTried,
                ..VALID_TRIGGER
            },
            Status::False,
            "BrokerNotReady",
            "spec.delivery.retry: must be at least 0",
        ),
        (
            "broker without status",
            TriggerFacts {
                broker: BrokerState::Unknown,
                subscription: Storage::NotTried,
                ..VALID_TRIGGER
            },
            Status::Unknown,
            "BrokerUnknown",
            "whether the broker is ready is not known yet",
        ),
        (
            "subscriber unresolved",
            TriggerFacts {
                subscriber: Resolution::Failed("Service default/web does not exist"),
                subscription: Storage::NotTried,
                ..VALID_TRIGGER
            },
            Status::False,
            "SubscriberResolveFailed",
            "Service default/web does not exist",
        ),
        (
            "dead-letter sink unresolved",
            TriggerFacts {
                dead_letter_sink: Resolution::Failed("Service default/dls does not exist"),
                ..VALID_TRIGGER
            },
            Status::False,
            "DeadLetterSinkResolveFailed",
            "Service default/dls does not exist",
        ),
        (
            "channel down",
            TriggerFacts {
                subscription: Storage::Failed("cannot create the trigger's cursor: refused"),
                ..VALID_TRIGGER
            },
            Status::False,
            "ChannelUnavailable",
            "cannot create the trigger's cursor: refused",
        ),
        (
            "invalid, broker missing too: invalid wins",
            TriggerFacts {
                spec: Err("spec.filters[0].cesql: unexpected end"),
                broker: BrokerState::Missing("orders"),
                subscription: Storage::NotTried,
                ..VALID_TRIGGER
            },
            Status::False,
            "InvalidTrigger",
            "spec.filters[0].cesql: unexpected end",
        ),
        (
            "invalid, the last valid version runs",
            TriggerFacts {
                spec: Err("spec.subscriber: no uri or ref"),
                broker: BrokerState::Unknown,
                subscriber: Resolution::NotLooked,
                dead_letter_sink: Resolution::NotLooked,
                subscription: Storage::NotTried,
                fallback: Fallback::LastValid,
            },
            Status::False,
            "InvalidTrigger",
            "spec.subscriber: no uri or ref; the last valid version keeps delivering",
        ),
    ];
    for (case, facts, status, reason, message) in table {
        assert_eq!(
            ready(&trigger(&facts)),
            (status, Some(reason), message.to_owned()),
            "{case}"
        );
    }
}

#[test]
fn the_same_invalid_trigger_gets_the_same_reason_from_both_control_planes() {
    // Kubernetes knows the broker and resolves refs; `weft up` knows neither for a spec
    // it could not validate. Both say InvalidTrigger, with the validation's message.
    let problems = "spec.filters[0].cesql: invalid CloudEvents SQL expression";
    let cluster = trigger(&TriggerFacts {
        spec: Err(problems),
        broker: BrokerState::Ready,
        subscriber: Resolution::Resolved,
        dead_letter_sink: Resolution::NotConfigured,
        subscription: Storage::NotTried,
        fallback: Fallback::NotKnown,
    });
    let standalone = trigger(&TriggerFacts {
        spec: Err(problems),
        broker: BrokerState::Unknown,
        subscriber: Resolution::NotLooked,
        dead_letter_sink: Resolution::NotLooked,
        subscription: Storage::NotTried,
        fallback: Fallback::Nothing,
    });
    assert_eq!(ready(&cluster), ready(&standalone));
    assert_eq!(
        cluster
            .get(ConditionType::SubscriptionReady)
            .map(|c| c.reason),
        Some(Some(Reason::InvalidTrigger))
    );
}

#[test]
fn a_subscription_waits_for_what_it_needs_before_the_channel() {
    let subscription = |facts: TriggerFacts<'_>| {
        let readiness = trigger(&facts);
        let c = readiness
            .get(ConditionType::SubscriptionReady)
            .cloned()
            .unwrap();
        (c.status, c.reason)
    };
    assert_eq!(
        subscription(TriggerFacts {
            subscriber: Resolution::Failed("gone"),
            subscription: Storage::NotTried,
            ..VALID_TRIGGER
        }),
        (Status::Unknown, Some(Reason::SubscriberResolveFailed))
    );
    assert_eq!(
        subscription(TriggerFacts {
            broker: BrokerState::Missing("b"),
            subscription: Storage::NotTried,
            ..VALID_TRIGGER
        }),
        (Status::Unknown, Some(Reason::BrokerNotReady))
    );
    assert_eq!(
        subscription(TriggerFacts {
            subscription: Storage::NotTried,
            ..VALID_TRIGGER
        }),
        (Status::Unknown, Some(Reason::ChannelUnavailable))
    );
}

#[test]
fn only_transient_causes_ask_for_an_early_look() {
    let waiting = |facts: TriggerFacts<'_>| trigger(&facts).waiting();
    assert!(waiting(TriggerFacts {
        subscriber: Resolution::Failed("gone"),
        ..VALID_TRIGGER
    }));
    assert!(waiting(TriggerFacts {
        broker: BrokerState::Unknown,
        ..VALID_TRIGGER
    }));
    assert!(waiting(TriggerFacts {
        subscription: Storage::Failed("refused"),
        ..VALID_TRIGGER
    }));
    // A missing broker or an invalid spec changes only with an edit, which is watched.
    assert!(!waiting(TriggerFacts {
        broker: BrokerState::Missing("b"),
        subscription: Storage::NotTried,
        ..VALID_TRIGGER
    }));
    assert!(!waiting(TriggerFacts {
        spec: Err("bad"),
        ..VALID_TRIGGER
    }));
}

#[test]
fn a_broker_is_ready_with_its_log_and_says_why_not_otherwise() {
    let readiness = broker(&VALID_BROKER);
    assert!(readiness.is_ready());
    assert_eq!(
        summary(&readiness),
        vec![
            ("Addressable", Status::True, None),
            (
                "DeadLetterSinkResolved",
                Status::True,
                Some("DeadLetterSinkNotConfigured")
            ),
            ("Ready", Status::True, None),
            ("TriggerChannelReady", Status::True, None),
            ("Valid", Status::True, None),
        ]
    );

    let table: Vec<(&str, BrokerFacts<'_>, Status, &str, &str)> = vec![
        (
            "channel down",
            BrokerFacts {
                log: Storage::Failed("cannot create the log: refused"),
                ..VALID_BROKER
            },
            Status::False,
            "ChannelUnavailable",
            "cannot create the log: refused",
        ),
        (
            "dead-letter sink unresolved",
            BrokerFacts {
                dead_letter_sink: Resolution::Failed("Service default/dls does not exist"),
                ..VALID_BROKER
            },
            Status::False,
            "DeadLetterSinkResolveFailed",
            "Service default/dls does not exist",
        ),
        (
            "invalid, on Kubernetes",
            BrokerFacts {
                spec: Err("spec.delivery.retry: must be at least 0"),
                log: Storage::NotTried,
                ..VALID_BROKER
            },
            Status::False,
            "InvalidBroker",
            "spec.delivery.retry: must be at least 0",
        ),
        (
            "invalid, the last valid version runs",
            BrokerFacts {
                spec: Err("bad"),
                fallback: Fallback::LastValid,
                ..VALID_BROKER
            },
            Status::False,
            "InvalidBroker",
            "bad; the last valid version keeps running",
        ),
        (
            "invalid, never valid, its log kept",
            BrokerFacts {
                spec: Err("bad"),
                dead_letter_sink: Resolution::NotLooked,
                fallback: Fallback::LogKept,
                ..VALID_BROKER
            },
            Status::False,
            "InvalidBroker",
            "bad; its log is kept and still accepts events, which wait until the broker is fixed",
        ),
        (
            "invalid, nothing runs",
            BrokerFacts {
                spec: Err("bad"),
                log: Storage::NotTried,
                dead_letter_sink: Resolution::NotLooked,
                fallback: Fallback::Nothing,
            },
            Status::False,
            "InvalidBroker",
            "bad; it accepts no events until fixed",
        ),
    ];
    for (case, facts, status, reason, message) in table {
        assert_eq!(
            ready(&broker(&facts)),
            (status, Some(reason), message.to_owned()),
            "{case}"
        );
    }
}

#[test]
fn written_conditions_keep_their_transition_time_while_their_status_holds() {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let t1 = t0 + chrono::Duration::seconds(60);
    let mut status = Vec::new();
    assert!(trigger(&VALID_TRIGGER).write_into(&mut status, t0));
    assert!(
        !trigger(&VALID_TRIGGER).write_into(&mut status, t1),
        "nothing changed"
    );
    let broken = trigger(&TriggerFacts {
        subscription: Storage::Failed("refused"),
        ..VALID_TRIGGER
    });
    assert!(broken.write_into(&mut status, t1));
    let time = |type_: &str| {
        crd::find_condition(&status, type_)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap()
    };
    assert_eq!(time("BrokerReady"), "2026-01-01T00:00:00Z");
    assert_eq!(time("Ready"), "2026-01-01T00:01:00Z");
    let ready = crd::find_condition(&status, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("ChannelUnavailable"));
    assert_eq!(ready.message.as_deref(), Some("refused"));
}
