//! The `status` of Broker and Trigger objects, field for field as Knative's duck types spell
//! them in JSON (`observedGeneration`, `conditions`, `address.url`, `subscriberUri`,
//! `deadLetterSinkCACerts`, …), so `kubectl get brokers,triggers` and Knative's tools read
//! what Weft writes.
//!
//! Status types accept fields they do not know: on a cluster that runs Knative, Triggers of
//! Knative's own brokers carry status fields (`policies`, `auth`) that Weft only reads past.
//!
//! [`Condition`] has constructors for the three statuses, and [`set_condition`] updates a list
//! of conditions the way Kubernetes expects: a condition keeps its `lastTransitionTime` while
//! its status stays the same.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The condition type that sums up an object: `Ready`. `kubectl get` shows its status and
/// reason.
pub const READY: &str = "Ready";

/// Whether a condition holds: `True`, `False` or `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold; `reason` and `message` say why.
    False,
    /// Not known yet (still reconciling, or waiting for something). Any other text reads as
    /// this.
    #[serde(other)]
    Unknown,
}

/// How much a failed condition matters. Knative leaves `severity` out for `Error` (its Go
/// constant is the empty string), and so does `Condition::with_severity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionSeverity {
    /// Worth a look; the object can still be ready.
    Warning,
    /// For information only.
    Info,
    /// The failure makes the object not ready. An empty or unknown text reads as this.
    #[serde(other)]
    Error,
}

/// One observation of an object's state, as Knative's `apis.Condition` has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `Ready`, `Addressable`, `SubscriberResolved`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// How much a failure matters; absent means `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<ConditionSeverity>,
    /// When `status` last changed, in RFC 3339 (`2024-03-01T10:00:05Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// A CamelCase word for the last transition, e.g. `BrokerDoesNotExist`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for people about the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    /// A condition of `type_` with `status`, no reason, message or time.
    pub fn new(type_: impl Into<String>, status: ConditionStatus) -> Self {
        Condition {
            type_: type_.into(),
            status,
            severity: None,
            last_transition_time: None,
            reason: None,
            message: None,
        }
    }

    /// `type_` holds.
    pub fn true_(type_: impl Into<String>) -> Self {
        Condition::new(type_, ConditionStatus::True)
    }

    /// Whether `other` says the same (status, reason, message), whenever it was written.
    pub fn same_as(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.reason == other.reason
            && self.message == other.message
    }

    /// `type_` does not hold, for `reason` (a CamelCase word), explained by `message`.
    pub fn false_(
        type_: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Condition::new(type_, ConditionStatus::False).because(reason, message)
    }

    /// Whether `type_` holds is not known yet, for `reason`, explained by `message`.
    pub fn unknown(
        type_: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Condition::new(type_, ConditionStatus::Unknown).because(reason, message)
    }

    /// Sets the reason and message.
    pub fn because(mut self, reason: impl Into<String>, message: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self.message = Some(message.into());
        self
    }

    /// Sets the severity; [`ConditionSeverity::Error`] is written as no severity, as Knative
    /// does.
    pub fn with_severity(mut self, severity: ConditionSeverity) -> Self {
        self.severity = (severity != ConditionSeverity::Error).then_some(severity);
        self
    }

    /// Whether the condition holds.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// The condition of `type_` in `conditions`, if there is one.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Puts `condition` into `conditions`, replacing the one of the same type, and keeps the list
/// sorted by type (as Knative does, for `kubectl`). The previous `lastTransitionTime` is kept
/// when the status did not change; otherwise it becomes `now`. Returns whether anything
/// changed, so that an unchanged status need not be written back.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    mut condition: Condition,
    now: DateTime<Utc>,
) -> bool {
    let position = conditions.iter().position(|c| c.type_ == condition.type_);
    condition.last_transition_time = match position.map(|i| &conditions[i]) {
        Some(old) if old.status == condition.status && old.last_transition_time.is_some() => {
            old.last_transition_time.clone()
        }
        _ => Some(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
    };
    match position {
        Some(i) if conditions[i] == condition => false,
        Some(i) => {
            conditions[i] = condition;
            true
        }
        None => {
            conditions.push(condition);
            conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
            true
        }
    }
}

/// An address an object can be reached at: Knative's `duckv1.Addressable`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Addressable {
    /// The address's name, e.g. `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The URL events are sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PEM CA certificates that the address's TLS certificate is issued by.
    #[serde(rename = "CACerts", default, skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// The OIDC audience of the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The observed state of a Broker (`Broker.status`), written by the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and the conditions it is made of, sorted by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Extra state the controller wants to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Where producers send events: the broker's ingress URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Every address of the broker (e.g. http and https).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
    /// The resolved URL of `spec.delivery.deadLetterSink`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    /// The CA certificates of the dead-letter sink.
    #[serde(
        rename = "deadLetterSinkCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dead_letter_sink_ca_certs: Option<String>,
    /// The OIDC audience of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
}

/// The observed state of a Trigger (`Trigger.status`), written by the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and the conditions it is made of, sorted by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Extra state the controller wants to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The resolved URL of `spec.subscriber`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// The CA certificates of the subscriber.
    #[serde(
        rename = "subscriberCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_ca_certs: Option<String>,
    /// The OIDC audience of the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_audience: Option<String>,
    /// The resolved URL of the dead-letter sink in use (the trigger's, else its broker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    /// The CA certificates of the dead-letter sink.
    #[serde(
        rename = "deadLetterSinkCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dead_letter_sink_ca_certs: Option<String>,
    /// The OIDC audience of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, second).unwrap()
    }

    #[test]
    fn conditions_serialize_as_knative_spells_them() {
        let condition = Condition::false_(READY, "BrokerDoesNotExist", "no broker \"x\"")
            .with_severity(ConditionSeverity::Warning);
        assert_eq!(
            serde_json::to_value(&condition).unwrap(),
            serde_json::json!({
                "type": "Ready",
                "status": "False",
                "severity": "Warning",
                "reason": "BrokerDoesNotExist",
                "message": "no broker \"x\"",
            })
        );
        let error = Condition::true_(READY).with_severity(ConditionSeverity::Error);
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({"type": "Ready", "status": "True"})
        );
    }

    #[test]
    fn unknown_texts_read_as_unknown_status_and_error_severity() {
        let condition: Condition = serde_json::from_value(serde_json::json!({
            "type": "Ready", "status": "Maybe", "severity": ""
        }))
        .unwrap();
        assert_eq!(condition.status, ConditionStatus::Unknown);
        assert_eq!(condition.severity, Some(ConditionSeverity::Error));
    }

    #[test]
    fn transition_time_is_kept_while_the_status_stays() {
        let mut conditions = Vec::new();
        let waiting = Condition::unknown(READY, "Reconciling", "creating the log");
        assert!(set_condition(&mut conditions, waiting.clone(), at(1)));
        assert!(!set_condition(&mut conditions, waiting, at(2)));
        assert_eq!(
            conditions[0].last_transition_time.as_deref(),
            Some("2024-03-01T10:00:01Z")
        );

        let still_waiting = Condition::unknown(READY, "Reconciling", "resolving the subscriber");
        assert!(set_condition(&mut conditions, still_waiting, at(3)));
        assert_eq!(
            conditions[0].last_transition_time.as_deref(),
            Some("2024-03-01T10:00:01Z")
        );
        assert_eq!(
            conditions[0].message.as_deref(),
            Some("resolving the subscriber")
        );

        assert!(set_condition(
            &mut conditions,
            Condition::true_(READY),
            at(4)
        ));
        assert_eq!(
            conditions[0].last_transition_time.as_deref(),
            Some("2024-03-01T10:00:04Z")
        );
        assert_eq!(conditions[0].reason, None);
    }

    #[test]
    fn conditions_stay_sorted_by_type() {
        let mut conditions = Vec::new();
        for type_ in [READY, "BrokerReady", "SubscriberResolved"] {
            set_condition(&mut conditions, Condition::true_(type_), at(0));
        }
        let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["BrokerReady", "Ready", "SubscriberResolved"]);
        assert!(find_condition(&conditions, READY).unwrap().is_true());
        assert!(find_condition(&conditions, "Addressable").is_none());
    }

    #[test]
    fn statuses_use_knative_field_names_and_read_unknown_fields() {
        let status = TriggerStatus {
            observed_generation: Some(3),
            subscriber_uri: Some("http://sink/".into()),
            subscriber_ca_certs: Some("PEM".into()),
            dead_letter_sink_ca_certs: Some("PEM".into()),
            ..TriggerStatus::default()
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "observedGeneration": 3,
                "subscriberUri": "http://sink/",
                "subscriberCACerts": "PEM",
                "deadLetterSinkCACerts": "PEM",
            })
        );
        let knative: BrokerStatus = serde_json::from_value(serde_json::json!({
            "address": {"name": "http", "url": "http://broker/", "CACerts": "PEM"},
            "policies": [{"apiVersion": "eventing.knative.dev/v1alpha1", "name": "p"}],
            "deadLetterSinkUri": "http://dls/",
        }))
        .unwrap();
        assert_eq!(knative.address.unwrap().ca_certs.as_deref(), Some("PEM"));
        assert_eq!(knative.dead_letter_sink_uri.as_deref(), Some("http://dls/"));
    }
}
