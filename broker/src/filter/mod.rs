//! Trigger filters: decide, per event, whether a trigger's subscriber gets it.
//!
//! A filter is compiled once when the trigger is applied ([`Filter::compile`]) and
//! evaluated for every event ([`Filter::matches`]) without re-parsing, allocating for the
//! common dialects, or copying event data: attribute values are borrowed from the event.
//!
//! Which filter a trigger has, as Knative decides it: a non-empty `spec.filters` (the
//! Subscriptions API dialects, entries ANDed) overrides `spec.filter.attributes` (the
//! legacy exact-match map); with neither, every event matches.
//!
//! # Layout
//! - this module: [`Filter`], the legacy attributes filter, [`FilterError`].
//! - [`dialects`]: `exact`, `prefix`, `suffix`, `all`, `any`, `not`, `cesql`.
//! - [`cesql`]: the CloudEvents SQL engine.
//! - `text`: the string form of integer and boolean attributes, without allocating.

pub mod cesql;
pub mod dialects;
mod text;

use weft_config::TriggerConfig;
use weft_config::event::{AttributeRef, Event};

pub use dialects::Dialect;
use text::Text;

/// Why a trigger's filter cannot be used. Each names the filter by its path in the
/// Trigger (e.g. `spec.filters[2].cesql`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A `cesql` expression does not compile.
    #[error("{filter}: invalid CloudEvents SQL expression {source}")]
    Cesql {
        /// The filter, e.g. `spec.filters[2].cesql`.
        filter: String,
        /// What is wrong, and where in the expression.
        #[source]
        source: cesql::CompileError,
    },
    /// An `exact`, `prefix` or `suffix` map is empty.
    #[error("{filter} is empty; map at least one attribute to a value")]
    NoAttributes {
        /// The filter, e.g. `spec.filters[0].exact`.
        filter: String,
    },
    /// An `exact`, `prefix` or `suffix` map has an empty attribute name.
    #[error("{filter} has an empty attribute name; use an attribute such as type or source")]
    EmptyAttributeName {
        /// The filter, e.g. `spec.filters[0].exact`.
        filter: String,
    },
    /// An `exact`, `prefix` or `suffix` map has an empty value.
    #[error("{filter}[{attribute}] is empty; give the text to match")]
    EmptyValue {
        /// The filter, e.g. `spec.filters[0].prefix`.
        filter: String,
        /// The attribute whose value is empty.
        attribute: String,
    },
    /// An `all` or `any` has no children.
    #[error("{filter} has no filters; give at least one")]
    NoChildren {
        /// The filter, e.g. `spec.filters[1].any`.
        filter: String,
    },
}

/// A compiled trigger filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// No filter: every event matches.
    All,
    /// `spec.filter.attributes`: every listed attribute must be present; a non-empty value
    /// must equal the attribute exactly, `""` accepts any non-empty value.
    Attributes(Vec<(String, String)>),
    /// `spec.filters`: every entry must match.
    Dialects(Vec<Dialect>),
}

impl Filter {
    /// Compiles the trigger's filter.
    pub fn compile(trigger: &TriggerConfig) -> Result<Filter, FilterError> {
        if !trigger.filters.is_empty() {
            return trigger
                .filters
                .iter()
                .enumerate()
                .map(|(i, filter)| Dialect::compile(filter, &format!("spec.filters[{i}]")))
                .collect::<Result<_, _>>()
                .map(Filter::Dialects);
        }
        if trigger.filter_attributes.is_empty() {
            return Ok(Filter::All);
        }
        Ok(Filter::Attributes(
            trigger
                .filter_attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))
    }

    /// Whether the event passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::All => true,
            Filter::Attributes(pairs) => {
                pairs
                    .iter()
                    .all(|(name, want)| match event.attribute(name) {
                        None => false,
                        Some(AttributeRef::String(s)) if want.is_empty() => !s.is_empty(),
                        Some(_) if want.is_empty() => true,
                        Some(value) => *Text::of_attribute(value) == **want,
                    })
            }
            Filter::Dialects(entries) => entries.iter().all(|entry| entry.matches(event)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use weft_config::{AttributeValue, ObjectKey, SubscriptionsFilter};

    fn filter(pairs: &[(&str, &str)]) -> Filter {
        Filter::Attributes(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn event() -> Event {
        let mut e = Event::new("1", "/src", "com.example.created").unwrap();
        e.set_extension("priority", AttributeValue::Integer(5))
            .unwrap();
        e.set_extension("empty", AttributeValue::String(String::new()))
            .unwrap();
        e
    }

    fn trigger(attributes: &[(&str, &str)], filters: Vec<SubscriptionsFilter>) -> TriggerConfig {
        TriggerConfig {
            key: ObjectKey::new("default", "t"),
            generation: None,
            broker: "default".into(),
            filter_attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            filters,
            subscriber: "http://127.0.0.1:1/".parse().unwrap(),
            delivery: None,
            order: Default::default(),
            max_in_flight: None,
        }
    }

    fn exact(name: &str, value: &str) -> SubscriptionsFilter {
        SubscriptionsFilter::Exact(BTreeMap::from([(name.to_string(), value.to_string())]))
    }

    #[test]
    fn exact_values_are_case_sensitive() {
        assert!(filter(&[("type", "com.example.created")]).matches(&event()));
        assert!(!filter(&[("type", "com.example.Created")]).matches(&event()));
        assert!(filter(&[("type", "com.example.created"), ("source", "/src")]).matches(&event()));
        assert!(
            !filter(&[("type", "com.example.created"), ("source", "/other")]).matches(&event())
        );
    }

    #[test]
    fn empty_value_means_present_with_any_value() {
        assert!(filter(&[("source", "")]).matches(&event()));
        assert!(!filter(&[("subject", "")]).matches(&event()));
        assert!(!filter(&[("empty", "")]).matches(&event()));
        assert!(filter(&[("priority", "")]).matches(&event()));
    }

    #[test]
    fn missing_attribute_never_matches_and_extensions_compare_as_strings() {
        assert!(!filter(&[("missing", "x")]).matches(&event()));
        assert!(filter(&[("priority", "5")]).matches(&event()));
        assert!(!filter(&[("priority", "05")]).matches(&event()));
        assert!(Filter::All.matches(&event()));
    }

    #[test]
    fn no_filter_matches_everything() {
        assert_eq!(Filter::compile(&trigger(&[], vec![])), Ok(Filter::All));
    }

    #[test]
    fn non_empty_filters_override_the_legacy_filter() {
        // The legacy filter would reject the event; spec.filters accepts it and wins.
        let both = trigger(
            &[("type", "other")],
            vec![exact("type", "com.example.created")],
        );
        let compiled = Filter::compile(&both).unwrap();
        assert!(matches!(compiled, Filter::Dialects(_)));
        assert!(compiled.matches(&event()));
        // And the other way round.
        let both = trigger(
            &[("type", "com.example.created")],
            vec![exact("type", "other")],
        );
        assert!(!Filter::compile(&both).unwrap().matches(&event()));
        // Empty filters leave the legacy filter in charge.
        let legacy = trigger(&[("type", "other")], vec![]);
        assert!(!Filter::compile(&legacy).unwrap().matches(&event()));
    }

    #[test]
    fn filters_entries_are_anded() {
        let entries = vec![
            exact("type", "com.example.created"),
            SubscriptionsFilter::Cesql("priority > 3".into()),
        ];
        assert!(
            Filter::compile(&trigger(&[], entries))
                .unwrap()
                .matches(&event())
        );
        let entries = vec![
            exact("type", "com.example.created"),
            SubscriptionsFilter::Cesql("priority > 5".into()),
        ];
        assert!(
            !Filter::compile(&trigger(&[], entries))
                .unwrap()
                .matches(&event())
        );
    }

    #[test]
    fn errors_name_the_entry() {
        let entries = vec![
            exact("type", "a"),
            exact("source", "b"),
            SubscriptionsFilter::Cesql("type LIKE".into()),
        ];
        let error = Filter::compile(&trigger(&[], entries)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "spec.filters[2].cesql: invalid CloudEvents SQL expression at position 9: \
             expected a string literal as the LIKE pattern, found the end of the expression"
        );
    }
}
