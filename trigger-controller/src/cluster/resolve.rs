//! Resolving a Knative `Destination` to a URL, as Knative's URI resolver does: a `uri`
//! alone is used as it is; a `ref` to a Kubernetes Service becomes
//! `http://NAME.NAMESPACE.svc.cluster.local`; a `ref` to anything else becomes that
//! object's `status.address.url`; a `uri` beside a `ref` is resolved relative to the
//! ref's URL.

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use url::Url;
use weft_config::manifest::{Destination, KReference, join_uri};

/// Why a destination has no URL (yet). The message is written into a condition.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The destination names neither a `ref` nor a `uri`.
    #[error("the destination has neither ref nor uri")]
    Empty,
    /// A `uri` without a `ref` must be absolute.
    #[error("uri {0:?} is not an absolute URL")]
    NotAbsolute(String),
    /// The referenced object does not exist.
    #[error("{kind} {namespace}/{name} does not exist")]
    NotFound {
        /// The ref's kind.
        kind: String,
        /// The ref's namespace.
        namespace: String,
        /// The ref's name.
        name: String,
    },
    /// The referenced object exists but has no `status.address.url` (not addressable, or not
    /// ready).
    #[error("{kind} {namespace}/{name} has no status.address.url")]
    NotAddressable {
        /// The ref's kind.
        kind: String,
        /// The ref's namespace.
        namespace: String,
        /// The ref's name.
        name: String,
    },
    /// The ref's API version or kind is unknown to the API server, or it failed.
    #[error("cannot read {kind} {namespace}/{name}: {reason}")]
    Api {
        /// The ref's kind.
        kind: String,
        /// The ref's namespace.
        namespace: String,
        /// The ref's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The ref's URL and the relative `uri` do not make a URL.
    #[error("cannot join {base} and {uri:?}: {reason}")]
    Join {
        /// The ref's URL.
        base: String,
        /// The relative uri.
        uri: String,
        /// What went wrong.
        reason: String,
    },
}

/// Resolves `destination` of an object in `namespace`.
pub async fn resolve(
    client: &Client,
    namespace: &str,
    destination: &Destination,
) -> Result<String, ResolveError> {
    let uri = destination.uri.as_deref().filter(|u| !u.is_empty());
    let Some(reference) = &destination.reference else {
        let uri = uri.ok_or(ResolveError::Empty)?;
        return match Url::parse(uri) {
            Ok(url) if url.has_host() => Ok(uri.to_string()),
            _ => Err(ResolveError::NotAbsolute(uri.to_string())),
        };
    };
    let base = address_of(client, namespace, reference).await?;
    match uri {
        None => Ok(base),
        Some(uri) => join(&base, uri),
    }
}

/// The URL of the object `reference` names.
async fn address_of(
    client: &Client,
    namespace: &str,
    reference: &KReference,
) -> Result<String, ResolveError> {
    let namespace = reference
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace);
    let (group, version) = match reference.api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", reference.api_version.as_str()),
    };
    let api_error = |reason: String| ResolveError::Api {
        kind: reference.kind.clone(),
        namespace: namespace.to_string(),
        name: reference.name.clone(),
        reason,
    };
    if group.is_empty() && reference.kind == "Service" {
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(client.clone(), namespace);
        return match services.get_opt(&reference.name).await {
            Ok(Some(_)) => Ok(format!(
                "http://{}.{namespace}.svc.cluster.local",
                reference.name
            )),
            Ok(None) => Err(not_found(reference, namespace)),
            Err(e) => Err(api_error(e.to_string())),
        };
    }
    let gvk = GroupVersionKind::gvk(group, version, &reference.kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| api_error(e.to_string()))?;
    let objects: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let object = match objects.get_opt(&reference.name).await {
        Ok(Some(object)) => object,
        Ok(None) => return Err(not_found(reference, namespace)),
        Err(e) => return Err(api_error(e.to_string())),
    };
    object
        .data
        .pointer("/status/address/url")
        .and_then(|url| url.as_str())
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ResolveError::NotAddressable {
            kind: reference.kind.clone(),
            namespace: namespace.to_string(),
            name: reference.name.clone(),
        })
}

fn not_found(reference: &KReference, namespace: &str) -> ResolveError {
    ResolveError::NotFound {
        kind: reference.kind.clone(),
        namespace: namespace.to_string(),
        name: reference.name.clone(),
    }
}

/// `uri` relative to `base` ([`join_uri`], shared with standalone resolution).
fn join(base: &str, uri: &str) -> Result<String, ResolveError> {
    let error = |reason: String| ResolveError::Join {
        base: base.to_string(),
        uri: uri.to_string(),
        reason,
    };
    let base = Url::parse(base).map_err(|e| error(e.to_string()))?;
    join_uri(&base, uri)
        .map(String::from)
        .map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn a_relative_uri_joins_the_refs_url() {
        assert_eq!(
            join("http://sink.shop.svc.cluster.local", "/orders").unwrap(),
            "http://sink.shop.svc.cluster.local/orders"
        );
        let error = join("not a url", "/orders").unwrap_err().to_string();
        assert!(error.starts_with("cannot join not a url"), "{error}");
    }
}
