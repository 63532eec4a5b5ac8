//! The write step of a reconcile: an object's `status`, written only when it changed, and
//! a Kubernetes Event when its `Ready` condition changed (`Normal` when it became true,
//! `Warning` with the reason otherwise), so `kubectl describe` and `kubectl get events`
//! tell the story.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use weft_config::crd::{self, BrokerStatus, READY, TriggerStatus, find_condition};
use weft_config::redact::redact_urls_in;

use super::context::{Context, key_of};
use super::metrics::READY_CHANGES;
use crate::ControllerError;

/// A status with conditions.
pub(super) trait WithConditions: Serialize + PartialEq {
    /// Its conditions.
    fn conditions(&self) -> &[crd::Condition];
}

impl WithConditions for BrokerStatus {
    fn conditions(&self) -> &[crd::Condition] {
        &self.conditions
    }
}

impl WithConditions for TriggerStatus {
    fn conditions(&self) -> &[crd::Condition] {
        &self.conditions
    }
}

/// Writes `new` as the status of `object` (a `kind`) if it differs from `old`, and records
/// an Event if `Ready` changed.
pub(super) async fn status<K, S>(
    context: &Context,
    kind: &'static str,
    object: &K,
    old: &S,
    new: &S,
) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: WithConditions,
{
    if new == old {
        return Ok(());
    }
    let key = key_of(object);
    let api: Api<K> = Api::namespaced(context.client.clone(), &key.namespace);
    // A JSON merge patch; a field the new status lacks is removed.
    let mut value = serde_json::to_value(new).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        for cleared in ["address", "addresses", "subscriberUri", "deadLetterSinkUri"] {
            fields.entry(cleared).or_insert(Value::Null);
        }
    }
    api.patch_status(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": value })),
    )
    .await
    .map_err(|source| ControllerError::Kube {
        what: format!("cannot write the status of {kind} {key}"),
        source,
    })?;
    if let Some(event) = ready_event(old.conditions(), new.conditions()) {
        let type_ = if event.type_ == EventType::Normal {
            "Normal"
        } else {
            "Warning"
        };
        metrics::counter!(READY_CHANGES, "kind" => kind, "type" => type_).increment(1);
        if let Err(error) = context
            .recorder
            .publish(&event, &object.object_ref(&()))
            .await
        {
            tracing::warn!(object = %key, %error, "cannot record an Event");
        }
    }
    Ok(())
}

/// The Event for a `Ready` that changed status or reason between `old` and `new`.
fn ready_event(old: &[crd::Condition], new: &[crd::Condition]) -> Option<Event> {
    let after = find_condition(new, READY)?;
    let before = find_condition(old, READY);
    if before.is_some_and(|b| b.status == after.status && b.reason == after.reason) {
        return None;
    }
    let (type_, reason) = if after.is_true() {
        (EventType::Normal, "Ready".to_owned())
    } else {
        let reason = after.reason.clone().unwrap_or_else(|| "NotReady".into());
        (EventType::Warning, reason)
    };
    Some(Event {
        type_,
        reason,
        note: after
            .message
            .as_deref()
            .map(|m| redact_urls_in(m).into_owned()),
        action: "Reconcile".into(),
        secondary: None,
    })
}

#[cfg(test)]
mod tests {
    use weft_config::crd::Condition;

    use super::*;

    #[test]
    fn an_event_is_recorded_only_when_ready_changes_status_or_reason() {
        let ready = [Condition::true_(READY)];
        let missing = [Condition::false_(
            READY,
            "BrokerDoesNotExist",
            "Broker \"b\" does not exist",
        )];
        let event = ready_event(&[], &missing).expect("first status");
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!(event.reason, "BrokerDoesNotExist");
        assert_eq!(event.note.as_deref(), Some("Broker \"b\" does not exist"));
        assert!(ready_event(&missing, &missing).is_none(), "unchanged");
        let event = ready_event(&missing, &ready).expect("became ready");
        assert_eq!(
            (event.type_, event.reason.as_str()),
            (EventType::Normal, "Ready")
        );
        let retry = [Condition::false_(
            READY,
            "ChannelUnavailable",
            "https://u:p@x/ down",
        )];
        let event = ready_event(&ready, &retry).unwrap();
        assert!(
            !event.note.unwrap().contains("u:p"),
            "no credentials in Events"
        );
    }
}
