//! Trigger filters: decide, per event, whether a trigger's subscriber gets it.
//!
//! A filter is compiled once when the trigger is applied and evaluated for every event
//! without allocating or copying event data. This version evaluates Knative's legacy
//! `spec.filter.attributes`; the Subscriptions API dialects of `spec.filters` are parsed and
//! validated by `weft-config` but reported as not supported here.

use weft_config::TriggerConfig;
use weft_config::event::{AttributeRef, Event};

/// Why a trigger's filter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The trigger uses `spec.filters`, which this version does not evaluate.
    #[error(
        "spec.filters (Subscriptions API dialects) is not supported yet; use spec.filter.attributes"
    )]
    DialectsNotSupported,
}

/// A compiled trigger filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// No filter: every event matches.
    All,
    /// `spec.filter.attributes`: every listed attribute must be present; a non-empty value
    /// must equal the attribute exactly, `""` accepts any non-empty value.
    Attributes(Vec<(String, String)>),
}

impl Filter {
    /// Compiles the trigger's filter.
    pub fn compile(trigger: &TriggerConfig) -> Result<Filter, FilterError> {
        if !trigger.filters.is_empty() {
            return Err(FilterError::DialectsNotSupported);
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
                        Some(AttributeRef::String(s)) => {
                            if want.is_empty() {
                                !s.is_empty()
                            } else {
                                s == want
                            }
                        }
                        Some(other) => want.is_empty() || string_form_equals(other, want),
                    })
            }
        }
    }
}

/// Compares a non-string attribute by its string form without allocating.
fn string_form_equals(value: AttributeRef<'_>, want: &str) -> bool {
    match value {
        AttributeRef::String(s) => s == want,
        AttributeRef::Integer(i) => want
            .parse::<i32>()
            .is_ok_and(|w| w == i && want == i.to_string()),
        AttributeRef::Boolean(b) => want == if b { "true" } else { "false" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_config::AttributeValue;

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
    }

    #[test]
    fn missing_attribute_never_matches_and_extensions_compare_as_strings() {
        assert!(!filter(&[("missing", "x")]).matches(&event()));
        assert!(filter(&[("priority", "5")]).matches(&event()));
        assert!(!filter(&[("priority", "05")]).matches(&event()));
        assert!(Filter::All.matches(&event()));
    }
}
