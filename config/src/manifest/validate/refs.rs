//! What a `ref` destination means without Kubernetes.
//!
//! On a cluster, the controller looks a `ref` up in the API server and rewrites it to a
//! `uri` before validation. Standalone there is no API server, so the loader collects
//! what the manifest folder itself says into a [`LocalRefs`] value, and validation looks
//! refs up in it (no I/O):
//! - a ref to a Broker in the manifests is that broker's ingress URL,
//!   `<ingress base URL>/<namespace>/<name>`;
//! - a ref to any other object is the URL given by the [`URL_ANNOTATION`] of an object of
//!   the same API group, kind, namespace and name in the manifests (typically a `v1`
//!   Service standing for a sink that runs on this machine).
//!
//! A `uri` beside a `ref` is resolved relative to the ref's URL, as Knative does it
//! ([`join_uri`]).

use std::collections::{HashMap, HashSet};

use url::Url;

use crate::manifest::problem::FieldError;
use crate::manifest::types::{EVENTING_API_VERSION, KReference, URL_ANNOTATION};
use crate::model::ObjectKey;

/// How validation treats a `ref`, for an object in `namespace`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refs<'a> {
    /// What refs mean standalone; `None` when the caller resolves refs beforehand (a
    /// Kubernetes controller), so that a ref left is an error.
    pub(crate) local: Option<&'a LocalRefs>,
    /// The referring object's namespace: a ref's namespace by default.
    pub(crate) namespace: &'a str,
}

impl Refs<'_> {
    /// Refs that nothing resolves, for an object in the default namespace.
    #[cfg(test)]
    pub(crate) const NONE: Refs<'static> = Refs {
        local: None,
        namespace: crate::manifest::types::DEFAULT_NAMESPACE,
    };

    /// The URL `reference` (with `uri` beside it) names; problems go to `errors` at
    /// `field` (e.g. `spec.subscriber`).
    pub(crate) fn resolve(
        &self,
        reference: &KReference,
        uri: Option<&str>,
        field: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Url> {
        let Some(local) = self.local else {
            errors.push(FieldError::new(
                format!("{field}.ref"),
                format!(
                    "needs Kubernetes to resolve; use {field}.uri with an absolute http or \
                     https URL"
                ),
            ));
            return None;
        };
        local.resolve(reference, uri, self.namespace, field, errors)
    }
}

/// The addresses refs resolve to standalone: the Brokers in the manifests and the objects
/// that carry a [`URL_ANNOTATION`]. Built by the loader; given to
/// [`crate::manifest::Trigger::validate_with`] and [`crate::manifest::Broker::validate_with`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalRefs {
    /// The base URL of this process's ingress; `None` until it listens.
    ingress: Option<Url>,
    /// The Brokers in the manifests, valid or not: their address does not depend on it.
    brokers: HashSet<ObjectKey>,
    /// The annotated objects, or why one cannot be used.
    urls: HashMap<Target, Result<Url, String>>,
}

/// An object a ref can name: API group (without version), kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Target {
    group: String,
    kind: String,
    key: ObjectKey,
}

impl Target {
    fn new(api_version: &str, kind: &str, key: ObjectKey) -> Self {
        Target {
            group: group_of(api_version).to_owned(),
            kind: kind.to_owned(),
            key,
        }
    }
}

/// The group of an `apiVersion`: `serving.knative.dev` for `serving.knative.dev/v1`, the
/// empty core group for `v1`.
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

impl LocalRefs {
    /// No known objects; a ref to a Broker resolves against `ingress` (when known).
    pub fn new(ingress: Option<Url>) -> Self {
        LocalRefs {
            ingress,
            ..LocalRefs::default()
        }
    }

    /// Notes a Broker found in the manifests.
    pub fn add_broker(&mut self, key: ObjectKey) {
        self.brokers.insert(key);
    }

    /// Notes an object of `api_version` and `kind` whose [`URL_ANNOTATION`] is `url`, or
    /// why that annotation cannot be used (`Err`, a lowercase phrase). A second object of
    /// the same group, kind and name makes both unusable, as duplicates are.
    pub fn add_url(
        &mut self,
        api_version: &str,
        kind: &str,
        key: ObjectKey,
        url: Result<Url, String>,
    ) {
        let target = Target::new(api_version, kind, key);
        let url = match self.urls.contains_key(&target) {
            true => Err(format!(
                "is defined more than once, so neither {URL_ANNOTATION} annotation is used"
            )),
            false => url,
        };
        self.urls.insert(target, url);
    }

    /// Whether an object of `api_version` and `kind` named `key` was added with
    /// [`LocalRefs::add_url`].
    pub fn has_url(&self, api_version: &str, kind: &str, key: &ObjectKey) -> bool {
        let target = Target::new(api_version, kind, key.clone());
        self.urls.contains_key(&target)
    }

    /// The URL of the object `reference` names (in `namespace` unless it gives one), with
    /// `uri` resolved relative to it; problems go to `errors` at `field` (e.g.
    /// `spec.subscriber`).
    pub(crate) fn resolve(
        &self,
        reference: &KReference,
        uri: Option<&str>,
        namespace: &str,
        field: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Url> {
        let ref_field = format!("{field}.ref");
        let group = match (reference.api_version.as_str(), &reference.group) {
            ("", Some(group)) => group.clone(),
            (api_version, _) => group_of(api_version).to_owned(),
        };
        let mut missing = false;
        for (name, empty) in [
            ("kind", reference.kind.is_empty()),
            ("name", reference.name.is_empty()),
            (
                "apiVersion",
                reference.api_version.is_empty() && reference.group.is_none(),
            ),
        ] {
            if empty {
                errors.push(FieldError::new(
                    format!("{ref_field}.{name}"),
                    "is required",
                ));
                missing = true;
            }
        }
        if missing {
            return None;
        }
        let namespace = reference
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(namespace);
        let key = ObjectKey::new(namespace, reference.name.clone());
        let kind = &reference.kind;
        let base = if group == group_of(EVENTING_API_VERSION) && kind == "Broker" {
            self.broker_url(&key)
        } else {
            let target = Target {
                group: group.clone(),
                kind: kind.clone(),
                key: key.clone(),
            };
            match self.urls.get(&target) {
                Some(Ok(url)) => Ok(url.clone()),
                Some(Err(why)) => Err(format!("{kind} {key} {why}")),
                None => Err(unknown(&reference.api_version, &group, kind, &key)),
            }
        };
        let base = match base {
            Ok(base) => base,
            Err(message) => {
                errors.push(FieldError::new(ref_field, message));
                return None;
            }
        };
        match uri.filter(|u| !u.is_empty()) {
            None => Some(base),
            Some(uri) => match join_uri(&base, uri) {
                Ok(url) => Some(url),
                Err(error) => {
                    errors.push(FieldError::new(
                        format!("{field}.uri"),
                        format!("{uri:?} cannot be resolved against {base} ({error})"),
                    ));
                    None
                }
            },
        }
    }

    /// The ingress URL of the Broker `key`, or why there is none.
    fn broker_url(&self, key: &ObjectKey) -> Result<Url, String> {
        if !self.brokers.contains(key) {
            return Err(format!(
                "Broker {key} is not in the manifests; add it, or name a broker that is there"
            ));
        }
        let Some(ingress) = &self.ingress else {
            return Err(format!(
                "Broker {key} has no address yet: it is known once weft up listens"
            ));
        };
        let base = ingress.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{}/{}", key.namespace, key.name))
            .map_err(|error| format!("Broker {key} has no valid address ({error})"))
    }
}

/// What to add to the manifests so a ref to `kind` `key` resolves.
fn unknown(api_version: &str, group: &str, kind: &str, key: &ObjectKey) -> String {
    let api_version = match api_version {
        "" => group,
        given => given,
    };
    format!(
        "{kind} {key} is not known standalone; add a {kind} manifest (apiVersion \
         {api_version}) named {name} in namespace {namespace} with the annotation \
         {URL_ANNOTATION}: <its URL> (see README)",
        name = key.name,
        namespace = key.namespace,
    )
}

/// Checks the value of a [`URL_ANNOTATION`]: an absolute http or https URL.
pub fn url_annotation(value: &str) -> Result<Url, String> {
    let invalid = |why: &str| {
        format!("{value:?} {why}; give the absolute http or https URL the object answers on")
    };
    match Url::parse(value.trim()) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Err(invalid("is not http or https"))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Err(invalid("has no host")),
        Ok(url) => Ok(url),
        Err(error) => Err(invalid(&format!("is not a valid URL ({error})"))),
    }
}

/// `uri` relative to `base`, as Knative resolves a `uri` beside a `ref` (Go's
/// `url.ResolveReference`): an absolute `uri` wins; a path replaces the base's last
/// segment, or its whole path when it starts with `/`.
pub fn join_uri(base: &Url, uri: &str) -> Result<Url, url::ParseError> {
    base.join(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(api_version: &str, kind: &str, name: &str) -> KReference {
        KReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            ..KReference::default()
        }
    }

    fn resolve(refs: &LocalRefs, reference: &KReference, uri: Option<&str>) -> Result<Url, String> {
        let mut errors = Vec::new();
        match refs.resolve(reference, uri, "shop", "spec.subscriber", &mut errors) {
            Some(url) if errors.is_empty() => Ok(url),
            _ => Err(errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn a_relative_uri_joins_the_refs_url() {
        let base = url("http://sink.shop.svc.cluster.local");
        let join = |base: &Url, uri| join_uri(base, uri).unwrap().to_string();
        assert_eq!(
            join(&base, "/orders"),
            "http://sink.shop.svc.cluster.local/orders"
        );
        assert_eq!(
            join(&base, "orders?x=1"),
            "http://sink.shop.svc.cluster.local/orders?x=1"
        );
        assert_eq!(
            join(&url("http://sink.shop.svc.cluster.local/a/b"), "c"),
            "http://sink.shop.svc.cluster.local/a/c"
        );
        assert_eq!(join(&base, "http://elsewhere/x"), "http://elsewhere/x");
    }

    #[test]
    fn a_broker_ref_is_its_ingress_url_in_the_referring_namespace_by_default() {
        let mut refs = LocalRefs::new(Some(url("http://127.0.0.1:8080")));
        refs.add_broker(ObjectKey::new("shop", "orders"));
        refs.add_broker(ObjectKey::new("other", "orders"));
        let broker = reference(EVENTING_API_VERSION, "Broker", "orders");
        assert_eq!(
            resolve(&refs, &broker, None).unwrap().as_str(),
            "http://127.0.0.1:8080/shop/orders"
        );
        let elsewhere = KReference {
            namespace: Some("other".into()),
            ..broker.clone()
        };
        assert_eq!(
            resolve(&refs, &elsewhere, None).unwrap().as_str(),
            "http://127.0.0.1:8080/other/orders"
        );
        let missing = reference(EVENTING_API_VERSION, "Broker", "payments");
        assert_eq!(
            resolve(&refs, &missing, None).unwrap_err(),
            "spec.subscriber.ref: Broker shop/payments is not in the manifests; add it, or \
             name a broker that is there"
        );
        let unknown_port = LocalRefs {
            ingress: None,
            ..refs
        };
        let error = resolve(&unknown_port, &broker, None).unwrap_err();
        assert!(error.contains("once weft up listens"), "{error}");
    }

    #[test]
    fn an_annotated_object_matches_by_group_kind_namespace_and_name() {
        let mut refs = LocalRefs::new(None);
        let key = ObjectKey::new("shop", "display");
        refs.add_url(
            "v1",
            "Service",
            key.clone(),
            Ok(url("http://127.0.0.1:9090/")),
        );
        assert!(refs.has_url("v1", "Service", &key));
        assert_eq!(
            resolve(&refs, &reference("v1", "Service", "display"), None)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9090/"
        );
        assert_eq!(
            resolve(
                &refs,
                &reference("v1", "Service", "display"),
                Some("/orders?x=1")
            )
            .unwrap()
            .as_str(),
            "http://127.0.0.1:9090/orders?x=1"
        );
        // Another group (a Knative Service of the same name) is another object.
        let error = resolve(
            &refs,
            &reference("serving.knative.dev/v1", "Service", "display"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            error,
            "spec.subscriber.ref: Service shop/display is not known standalone; add a Service \
             manifest (apiVersion serving.knative.dev/v1) named display in namespace shop \
             with the annotation weft.dev/url: <its URL> (see README)"
        );
    }

    #[test]
    fn duplicates_and_missing_fields_are_reported() {
        let mut refs = LocalRefs::new(None);
        let key = ObjectKey::new("shop", "display");
        refs.add_url("v1", "Service", key.clone(), Ok(url("http://127.0.0.1:1/")));
        refs.add_url("v1", "Service", key, Ok(url("http://127.0.0.1:2/")));
        let error = resolve(&refs, &reference("v1", "Service", "display"), None).unwrap_err();
        assert!(error.contains("is defined more than once"), "{error}");
        let error = resolve(&refs, &reference("", "", "display"), None).unwrap_err();
        assert_eq!(
            error,
            "spec.subscriber.ref.kind: is required; spec.subscriber.ref.apiVersion: is required"
        );
    }

    #[test]
    fn the_annotation_must_be_an_absolute_http_url() {
        assert!(url_annotation("http://127.0.0.1:9090/").is_ok());
        for bad in ["/local", "ftp://host/", "not a url", "http://"] {
            let error = url_annotation(bad).unwrap_err();
            assert!(
                error.contains("absolute http or https URL"),
                "{bad}: {error}"
            );
        }
    }
}
