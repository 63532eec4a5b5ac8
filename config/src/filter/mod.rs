//! Trigger filters: decide, per event, whether a trigger's subscriber gets it.
//!
//! A [`Filter`] is built once, when a Trigger is validated (`manifest::validate`, the one
//! place that says which filters are valid and compiles CESQL), and travels in its
//! [`TriggerConfig`](crate::TriggerConfig): a validated trigger cannot fail to compile at
//! run time. The data plane evaluates it for every event ([`Filter::matches`]) without
//! re-parsing, allocating for the common dialects, or copying event data: attribute values
//! are borrowed from the event.
//!
//! Which filter a trigger has, as Knative decides it: a non-empty `spec.filters` (the
//! Subscriptions API dialects, entries ANDed) overrides `spec.filter.attributes` (the
//! legacy exact-match map); with neither, every event matches.
//!
//! # Layout
//! - this module: [`Filter`] and the legacy attributes filter.
//! - [`dialects`]: `exact`, `prefix`, `suffix`, `all`, `any`, `not`, `cesql`.
//! - [`cesql`]: the CloudEvents SQL engine.
//! - `text`: the string form of integer and boolean attributes, without allocating.

pub mod cesql;
pub mod dialects;
mod text;

use crate::event::{AttributeRef, Event};

pub use dialects::Dialect;
use text::Text;

/// A compiled trigger filter. Two filters are equal when they compiled to the same tree,
/// which is what the control plane asks when it decides whether a trigger must restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Filter {
    /// No filter: every event matches.
    #[default]
    All,
    /// `spec.filter.attributes`: every listed attribute must be present; a non-empty value
    /// must equal the attribute exactly, `""` accepts any non-empty value.
    Attributes(Vec<(String, String)>),
    /// `spec.filters`: every entry must match.
    Dialects(Vec<Dialect>),
}

impl Filter {
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
    use super::*;
    use crate::event::AttributeValue;

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

    fn exact(name: &str, value: &str) -> Dialect {
        Dialect::Exact(vec![(name.to_string(), value.to_string())])
    }

    fn cesql(source: &str) -> Dialect {
        Dialect::Cesql(cesql::Expression::compile(source).unwrap())
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
    fn filters_entries_are_anded() {
        let entries = vec![exact("type", "com.example.created"), cesql("priority > 3")];
        assert!(Filter::Dialects(entries).matches(&event()));
        let entries = vec![exact("type", "com.example.created"), cesql("priority > 5")];
        assert!(!Filter::Dialects(entries).matches(&event()));
    }

    #[test]
    fn equal_filters_are_the_same_compiled_tree() {
        let a = || Filter::Dialects(vec![cesql("type = 'a' AND priority > 3")]);
        assert_eq!(a(), a());
        // Redundant parentheses compile to the same tree: nothing to restart for.
        assert_eq!(
            a(),
            Filter::Dialects(vec![cesql("(type = 'a') AND (priority > 3)")])
        );
        assert_ne!(
            a(),
            Filter::Dialects(vec![cesql("type = 'a' AND priority > 4")])
        );
        assert_ne!(a(), Filter::All);
    }
}
