//! The Subscriptions API filter dialects of a Trigger's `spec.filters`, compiled.
//!
//! - `exact`, `prefix`, `suffix`: every listed attribute must be present and its value
//!   must equal / start with / end with the given text (case-sensitive). Context
//!   attributes and extensions alike; integer and boolean extensions compare by their
//!   string form (`5`, `true`).
//! - `all`: every child matches; `any`: at least one does; `not`: the child does not.
//!   `all` and `any` stop at the first child that decides.
//! - `cesql`: a [`cesql::Expression`] that must evaluate to `true` without error.

use weft_config::SubscriptionsFilter;
use weft_config::event::Event;

use super::FilterError;
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
    /// Compiles the entry found at `path` (e.g. `spec.filters[2]`).
    pub fn compile(filter: &SubscriptionsFilter, path: &str) -> Result<Dialect, FilterError> {
        Ok(match filter {
            SubscriptionsFilter::Exact(map) => Dialect::Exact(pairs(map, path, "exact")?),
            SubscriptionsFilter::Prefix(map) => Dialect::Prefix(pairs(map, path, "prefix")?),
            SubscriptionsFilter::Suffix(map) => Dialect::Suffix(pairs(map, path, "suffix")?),
            SubscriptionsFilter::All(children) => Dialect::All(list(children, path, "all")?),
            SubscriptionsFilter::Any(children) => Dialect::Any(list(children, path, "any")?),
            SubscriptionsFilter::Not(child) => {
                Dialect::Not(Box::new(Dialect::compile(child, &format!("{path}.not"))?))
            }
            SubscriptionsFilter::Cesql(source) => {
                Dialect::Cesql(cesql::Expression::compile(source).map_err(|source| {
                    FilterError::Cesql {
                        filter: format!("{path}.cesql"),
                        source,
                    }
                })?)
            }
        })
    }

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

/// Checks an `exact` / `prefix` / `suffix` map: at least one pair, no empty name or value.
fn pairs(
    map: &std::collections::BTreeMap<String, String>,
    path: &str,
    dialect: &str,
) -> Result<Vec<(String, String)>, FilterError> {
    let filter = || format!("{path}.{dialect}");
    if map.is_empty() {
        return Err(FilterError::NoAttributes { filter: filter() });
    }
    map.iter()
        .map(|(name, value)| {
            if name.is_empty() {
                Err(FilterError::EmptyAttributeName { filter: filter() })
            } else if value.is_empty() {
                Err(FilterError::EmptyValue {
                    filter: filter(),
                    attribute: name.clone(),
                })
            } else {
                Ok((name.clone(), value.clone()))
            }
        })
        .collect()
}

/// Compiles the children of an `all` / `any`: there must be at least one.
fn list(
    children: &[SubscriptionsFilter],
    path: &str,
    dialect: &str,
) -> Result<Vec<Dialect>, FilterError> {
    if children.is_empty() {
        return Err(FilterError::NoChildren {
            filter: format!("{path}.{dialect}"),
        });
    }
    children
        .iter()
        .enumerate()
        .map(|(i, child)| Dialect::compile(child, &format!("{path}.{dialect}[{i}]")))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use weft_config::AttributeValue;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn exact(pairs: &[(&str, &str)]) -> SubscriptionsFilter {
        SubscriptionsFilter::Exact(map(pairs))
    }

    fn prefix(pairs: &[(&str, &str)]) -> SubscriptionsFilter {
        SubscriptionsFilter::Prefix(map(pairs))
    }

    fn suffix(pairs: &[(&str, &str)]) -> SubscriptionsFilter {
        SubscriptionsFilter::Suffix(map(pairs))
    }

    fn cesql(source: &str) -> SubscriptionsFilter {
        SubscriptionsFilter::Cesql(source.into())
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

    fn matches(filter: SubscriptionsFilter) -> bool {
        Dialect::compile(&filter, "spec.filters[0]")
            .unwrap()
            .matches(&event())
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
        assert!(matches(SubscriptionsFilter::Not(Box::new(exact(&[(
            "missing", "x"
        )])))));
        assert!(!matches(cesql("missing = 'x'")));
        assert!(!matches(cesql("NOT (missing = 'x')")));
    }

    #[test]
    fn all_any_not_combine_children() {
        let yes = || exact(&[("type", "com.example.created")]);
        let no = || exact(&[("type", "other")]);
        assert!(matches(SubscriptionsFilter::All(vec![yes(), yes()])));
        assert!(!matches(SubscriptionsFilter::All(vec![yes(), no()])));
        assert!(matches(SubscriptionsFilter::Any(vec![no(), yes()])));
        assert!(!matches(SubscriptionsFilter::Any(vec![no(), no()])));
        assert!(matches(SubscriptionsFilter::Not(Box::new(no()))));
        assert!(!matches(SubscriptionsFilter::Not(Box::new(yes()))));
        assert!(matches(SubscriptionsFilter::All(vec![
            SubscriptionsFilter::Any(vec![no(), cesql("priority > 10")]),
            SubscriptionsFilter::Not(Box::new(cesql("urgent"))),
        ])));
    }

    #[test]
    fn invalid_entries_name_the_filter() {
        let compile =
            |filter: SubscriptionsFilter| Dialect::compile(&filter, "spec.filters[3]").unwrap_err();
        assert_eq!(
            compile(exact(&[])),
            FilterError::NoAttributes {
                filter: "spec.filters[3].exact".into()
            }
        );
        assert_eq!(
            compile(prefix(&[("", "x")])),
            FilterError::EmptyAttributeName {
                filter: "spec.filters[3].prefix".into()
            }
        );
        assert_eq!(
            compile(suffix(&[("type", "")])),
            FilterError::EmptyValue {
                filter: "spec.filters[3].suffix".into(),
                attribute: "type".into()
            }
        );
        assert_eq!(
            compile(SubscriptionsFilter::Any(vec![])),
            FilterError::NoChildren {
                filter: "spec.filters[3].any".into()
            }
        );
        let error = compile(SubscriptionsFilter::All(vec![
            exact(&[("type", "a")]),
            SubscriptionsFilter::Not(Box::new(cesql("type = 'a' AND"))),
        ]));
        assert_eq!(
            error.to_string(),
            "spec.filters[3].all[1].not.cesql: invalid CloudEvents SQL expression at \
             position 14: expected an expression, found the end of the expression"
        );
    }
}
