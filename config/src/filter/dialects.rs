//! The Subscriptions API filter dialects of a Trigger's `spec.filters`, compiled.
//!
//! - `exact`, `prefix`, `suffix`: every listed attribute must be present and its value
//!   must equal / start with / end with the given text (case-sensitive). Context
//!   attributes and extensions alike; integer and boolean extensions compare by their
//!   string form (`5`, `true`).
//! - `all`: every child matches; `any`: at least one does; `not`: the child does not.
//!   `all` and `any` stop at the first child that decides.
//! - `cesql`: a [`cesql::Expression`] that must evaluate to `true` without error.

use crate::event::Event;

use super::cesql;
use super::text::Text;

/// One compiled `spec.filters` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialect {
    /// `exact`: attribute → value pairs; each attribute must equal its value.
    Exact(Vec<(String, String)>),
    /// `prefix`: each attribute must start with its value.
    Prefix(Vec<(String, String)>),
    /// `suffix`: each attribute must end with its value.
    Suffix(Vec<(String, String)>),
    /// `all`: every child must match.
    All(Vec<Dialect>),
    /// `any`: at least one child must match.
    Any(Vec<Dialect>),
    /// `not`: the child must not match.
    Not(Box<Dialect>),
    /// `cesql`: the expression must be `true`.
    Cesql(cesql::Expression),
}

impl Dialect {
    /// Whether the event passes.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Dialect::Exact(pairs) => all_attributes(pairs, event, |value, want| value == want),
            Dialect::Prefix(pairs) => {
                all_attributes(pairs, event, |value, want| value.starts_with(want))
            }
            Dialect::Suffix(pairs) => {
                all_attributes(pairs, event, |value, want| value.ends_with(want))
            }
            Dialect::All(children) => children.iter().all(|child| child.matches(event)),
            Dialect::Any(children) => children.iter().any(|child| child.matches(event)),
            Dialect::Not(child) => !child.matches(event),
            Dialect::Cesql(expression) => expression.matches(event),
        }
    }
}

/// Whether every attribute is present and `test(value, want)` holds for it.
fn all_attributes(
    pairs: &[(String, String)],
    event: &Event,
    test: impl Fn(&str, &str) -> bool,
) -> bool {
    pairs.iter().all(|(name, want)| {
        event
            .attribute(name)
            .is_some_and(|value| test(&Text::of_attribute(value), want))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AttributeValue;

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn exact(list: &[(&str, &str)]) -> Dialect {
        Dialect::Exact(pairs(list))
    }

    fn prefix(list: &[(&str, &str)]) -> Dialect {
        Dialect::Prefix(pairs(list))
    }

    fn suffix(list: &[(&str, &str)]) -> Dialect {
        Dialect::Suffix(pairs(list))
    }

    fn cesql(source: &str) -> Dialect {
        Dialect::Cesql(cesql::Expression::compile(source).unwrap())
    }

    fn not(child: Dialect) -> Dialect {
        Dialect::Not(Box::new(child))
    }

    fn event() -> Event {
        let mut e = Event::new("1", "/src/a", "com.example.created").unwrap();
        e.set_subject(Some("orders/42".into())).unwrap();
        e.set_extension("priority", AttributeValue::Integer(15))
            .unwrap();
        e.set_extension("urgent", AttributeValue::Boolean(false))
            .unwrap();
        e.set_extension("region", AttributeValue::String("eu-west".into()))
            .unwrap();
        e
    }

    fn matches(filter: Dialect) -> bool {
        filter.matches(&event())
    }

    #[test]
    fn exact_prefix_suffix_match_context_attributes_and_extensions() {
        assert!(matches(exact(&[("type", "com.example.created")])));
        assert!(!matches(exact(&[("type", "com.example.Created")])));
        assert!(matches(exact(&[
            ("type", "com.example.created"),
            ("region", "eu-west")
        ])));
        assert!(!matches(exact(&[
            ("type", "com.example.created"),
            ("region", "eu")
        ])));
        assert!(matches(prefix(&[
            ("type", "com.example."),
            ("subject", "orders/")
        ])));
        assert!(!matches(prefix(&[("type", "com.other.")])));
        assert!(matches(suffix(&[("type", ".created"), ("source", "/a")])));
        assert!(!matches(suffix(&[("type", ".deleted")])));
        assert!(matches(prefix(&[("specversion", "1.")])));
    }

    #[test]
    fn non_string_extensions_compare_as_their_string_form() {
        assert!(matches(exact(&[("priority", "15")])));
        assert!(!matches(exact(&[("priority", "015")])));
        assert!(matches(prefix(&[("priority", "1")])));
        assert!(matches(suffix(&[("priority", "5")])));
        assert!(matches(exact(&[("urgent", "false")])));
        assert!(!matches(exact(&[("urgent", "False")])));
    }

    #[test]
    fn a_missing_attribute_fails_the_entry() {
        assert!(!matches(exact(&[("missing", "x")])));
        assert!(!matches(prefix(&[("type", "com."), ("missing", "x")])));
        assert!(!matches(suffix(&[("missing", "x")])));
        assert!(!matches(exact(&[("dataschema", "x")])));
        // ... and so `not` of it passes.
        assert!(matches(not(exact(&[("missing", "x")]))));
        assert!(!matches(cesql("missing = 'x'")));
        assert!(!matches(cesql("NOT (missing = 'x')")));
    }

    #[test]
    fn all_any_not_combine_children() {
        let yes = || exact(&[("type", "com.example.created")]);
        let no = || exact(&[("type", "other")]);
        assert!(matches(Dialect::All(vec![yes(), yes()])));
        assert!(!matches(Dialect::All(vec![yes(), no()])));
        assert!(matches(Dialect::Any(vec![no(), yes()])));
        assert!(!matches(Dialect::Any(vec![no(), no()])));
        assert!(matches(not(no())));
        assert!(!matches(not(yes())));
        assert!(matches(Dialect::All(vec![
            Dialect::Any(vec![no(), cesql("priority > 10")]),
            not(cesql("urgent")),
        ])));
    }
}
