//! A Trigger's filters checked and compiled: the legacy `spec.filter.attributes` map and the
//! Subscriptions API dialects of `spec.filters`, per Knative's webhook, with CESQL
//! expressions compiled by the engine in [`crate::filter::cesql`]. This is the one place that
//! says which filters are valid: what it accepts becomes a runnable [`Filter`], and a CESQL
//! syntax error is a problem at `spec.filters[i].cesql` like any other.

use std::collections::BTreeMap;

use crate::filter::cesql::Expression;
use crate::filter::{Dialect, Filter};
use crate::manifest::problem::FieldError;
use crate::manifest::types::SubscriptionsAPIFilter;

const DIALECTS: &str = "exact, prefix, suffix, all, any, not or cesql";

/// Whether `name` is a valid CloudEvents attribute name as Knative's webhook checks it:
/// `^[a-z][a-z0-9]*$`.
pub fn is_attribute_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn bad_attribute_name(field: String, name: &str) -> FieldError {
    FieldError::new(
        field,
        format!(
            "{name:?} is not a valid attribute name; use lowercase letters and digits, \
             starting with a letter"
        ),
    )
}

/// Checks and compiles a Trigger's filter: `filters` (found at `spec.filters`) when it is
/// not empty, else `attributes` (at `spec.filter.attributes`); both are checked either way.
/// The result is only meaningful when no error was pushed.
pub(crate) fn compile(
    attributes: &BTreeMap<String, String>,
    filters: &[SubscriptionsAPIFilter],
    errors: &mut Vec<FieldError>,
) -> Filter {
    let field = "spec.filter.attributes";
    for name in attributes.keys() {
        if !is_attribute_name(name) {
            errors.push(bad_attribute_name(format!("{field}[{name}]"), name));
        }
    }
    let dialects = list(filters, "spec.filters", errors);
    if !filters.is_empty() {
        Filter::Dialects(dialects)
    } else if !attributes.is_empty() {
        Filter::Attributes(
            attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    } else {
        Filter::All
    }
}

/// Checks and compiles the filters listed at `field`; an invalid one is left out.
fn list(
    filters: &[SubscriptionsAPIFilter],
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<Dialect> {
    filters
        .iter()
        .enumerate()
        .filter_map(|(i, f)| dialect(f, &format!("{field}[{i}]"), errors))
        .collect()
}

/// Checks and compiles one filter found at `field`; `None` when it is invalid.
fn dialect(
    filter: &SubscriptionsAPIFilter,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Dialect> {
    let given: Vec<&str> = [
        ("exact", filter.exact.is_some()),
        ("prefix", filter.prefix.is_some()),
        ("suffix", filter.suffix.is_some()),
        ("all", filter.all.is_some()),
        ("any", filter.any.is_some()),
        ("not", filter.not.is_some()),
        ("cesql", filter.cesql.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match given.len() {
        0 => {
            errors.push(FieldError::new(
                field,
                format!("no dialect; give exactly one of {DIALECTS}"),
            ));
            return None;
        }
        1 => {}
        _ => {
            errors.push(FieldError::new(
                field,
                format!(
                    "multiple dialects ({}); give exactly one of {DIALECTS}",
                    given.join(", ")
                ),
            ));
            return None;
        }
    }
    let before = errors.len();
    let compiled = if let Some(map) = &filter.exact {
        Dialect::Exact(pairs(map, &format!("{field}.exact"), errors))
    } else if let Some(map) = &filter.prefix {
        Dialect::Prefix(pairs(map, &format!("{field}.prefix"), errors))
    } else if let Some(map) = &filter.suffix {
        Dialect::Suffix(pairs(map, &format!("{field}.suffix"), errors))
    } else if let Some(children) = &filter.all {
        Dialect::All(nested(children, &format!("{field}.all"), errors))
    } else if let Some(children) = &filter.any {
        Dialect::Any(nested(children, &format!("{field}.any"), errors))
    } else if let Some(child) = &filter.not {
        Dialect::Not(Box::new(dialect(child, &format!("{field}.not"), errors)?))
    } else {
        cesql(
            filter.cesql.as_deref().unwrap_or_default(),
            &format!("{field}.cesql"),
            errors,
        )?
    };
    (errors.len() == before).then_some(compiled)
}

/// Checks an `exact`, `prefix` or `suffix` map found at `field`.
fn pairs(
    map: &BTreeMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, String)> {
    if map.is_empty() {
        errors.push(FieldError::new(
            field,
            "is empty; map at least one attribute to a value (e.g. type: com.example.created)",
        ));
    }
    for (name, value) in map {
        if !is_attribute_name(name) {
            errors.push(bad_attribute_name(format!("{field}[{name}]"), name));
        } else if value.is_empty() {
            errors.push(FieldError::new(
                format!("{field}[{name}]"),
                "has an empty value; give the text to match",
            ));
        }
    }
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Checks and compiles the children of `all` or `any` found at `field`.
fn nested(
    children: &[SubscriptionsAPIFilter],
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<Dialect> {
    if children.is_empty() {
        errors.push(FieldError::new(
            field,
            "is empty; give at least one nested filter",
        ));
    }
    list(children, field, errors)
}

/// Compiles the CESQL expression found at `field`.
fn cesql(source: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<Dialect> {
    if source.trim().is_empty() {
        errors.push(FieldError::new(
            field,
            "is empty; give a CloudEvents SQL expression (e.g. \"type LIKE 'com.example.%'\")",
        ));
        return None;
    }
    match Expression::compile(source) {
        Ok(expression) => Some(Dialect::Cesql(expression)),
        Err(e) => {
            errors.push(FieldError::new(
                field,
                format!("invalid CloudEvents SQL expression {e}"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AttributeValue, Event};

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn exact(pairs: &[(&str, &str)]) -> SubscriptionsAPIFilter {
        SubscriptionsAPIFilter {
            exact: Some(map(pairs)),
            ..Default::default()
        }
    }

    fn cesql(source: &str) -> SubscriptionsAPIFilter {
        SubscriptionsAPIFilter {
            cesql: Some(source.into()),
            ..Default::default()
        }
    }

    fn compiled(source: &str) -> Dialect {
        Dialect::Cesql(Expression::compile(source).unwrap())
    }

    fn check_with(
        attributes: &[(&str, &str)],
        list: &[SubscriptionsAPIFilter],
    ) -> (Filter, Vec<FieldError>) {
        let mut errors = Vec::new();
        let filter = compile(&map(attributes), list, &mut errors);
        (filter, errors)
    }

    fn check(list: &[SubscriptionsAPIFilter]) -> (Filter, Vec<FieldError>) {
        check_with(&[], list)
    }

    fn only_error(list: &[SubscriptionsAPIFilter]) -> FieldError {
        let (_, errors) = check(list);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    fn event() -> Event {
        let mut e = Event::new("1", "/src", "com.example.created").unwrap();
        e.set_extension("priority", AttributeValue::Integer(5))
            .unwrap();
        e
    }

    #[test]
    fn attribute_names_follow_knative() {
        for good in ["type", "source", "myext1", "a"] {
            assert!(is_attribute_name(good), "{good}");
        }
        for bad in ["", "Type", "1type", "my-ext", "my_ext", "é"] {
            assert!(!is_attribute_name(bad), "{bad}");
        }
        let (_, errors) = check_with(&[("type", "x"), ("Source", "")], &[]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.filter.attributes[Source]");
        assert!(errors[0].message.contains("lowercase letters and digits"));
    }

    #[test]
    fn no_filter_matches_everything_and_attributes_compile_in_order() {
        assert_eq!(check(&[]), (Filter::All, vec![]));
        assert_eq!(
            check_with(&[("type", "a"), ("source", "")], &[]),
            (
                Filter::Attributes(pairs(&[("source", ""), ("type", "a")])),
                vec![]
            )
        );
    }

    #[test]
    fn non_empty_filters_override_the_legacy_filter() {
        // The legacy filter would reject the event; spec.filters accepts it and wins.
        let (both, errors) = check_with(
            &[("type", "other")],
            &[exact(&[("type", "com.example.created")])],
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(both, Filter::Dialects(_)));
        assert!(both.matches(&event()));
        // And the other way round.
        let (both, _) = check_with(
            &[("type", "com.example.created")],
            &[exact(&[("type", "other")])],
        );
        assert!(!both.matches(&event()));
        // Empty filters leave the legacy filter in charge.
        let (legacy, _) = check_with(&[("type", "other")], &[]);
        assert!(!legacy.matches(&event()));
    }

    #[test]
    fn every_dialect_compiles() {
        let list = [
            exact(&[("type", "a")]),
            SubscriptionsAPIFilter {
                prefix: Some(map(&[("type", "com.")])),
                ..Default::default()
            },
            SubscriptionsAPIFilter {
                suffix: Some(map(&[("type", ".created")])),
                ..Default::default()
            },
            SubscriptionsAPIFilter {
                all: Some(vec![exact(&[("type", "a")]), cesql("source LIKE '%x'")]),
                ..Default::default()
            },
            SubscriptionsAPIFilter {
                any: Some(vec![exact(&[("type", "b")])]),
                ..Default::default()
            },
            SubscriptionsAPIFilter {
                not: Some(Box::new(exact(&[("subject", "s")]))),
                ..Default::default()
            },
        ];
        let (filter, errors) = check(&list);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            filter,
            Filter::Dialects(vec![
                Dialect::Exact(pairs(&[("type", "a")])),
                Dialect::Prefix(pairs(&[("type", "com.")])),
                Dialect::Suffix(pairs(&[("type", ".created")])),
                Dialect::All(vec![
                    Dialect::Exact(pairs(&[("type", "a")])),
                    compiled("source LIKE '%x'"),
                ]),
                Dialect::Any(vec![Dialect::Exact(pairs(&[("type", "b")]))]),
                Dialect::Not(Box::new(Dialect::Exact(pairs(&[("subject", "s")])))),
            ])
        );
    }

    #[test]
    fn compiled_entries_are_anded() {
        let (filter, _) = check(&[
            exact(&[("type", "com.example.created")]),
            cesql("priority > 3"),
        ]);
        assert!(filter.matches(&event()));
        let (filter, _) = check(&[
            exact(&[("type", "com.example.created")]),
            cesql("priority > 5"),
        ]);
        assert!(!filter.matches(&event()));
    }

    #[test]
    fn multiple_dialects_are_refused() {
        let mut both = exact(&[("type", "a")]);
        both.prefix = Some(map(&[("source", "b")]));
        let error = only_error(&[both]);
        assert_eq!(error.field, "spec.filters[0]");
        assert!(
            error
                .message
                .starts_with("multiple dialects (exact, prefix)")
        );
        assert!(error.message.contains("exactly one of exact, prefix"));
    }

    #[test]
    fn no_dialect_is_refused() {
        let error = only_error(&[exact(&[("type", "a")]), SubscriptionsAPIFilter::default()]);
        assert_eq!(error.field, "spec.filters[1]");
        assert!(error.message.starts_with("no dialect"), "{error}");
    }

    #[test]
    fn match_maps_need_valid_names_and_values() {
        let error = only_error(&[exact(&[])]);
        assert_eq!(error.field, "spec.filters[0].exact");
        assert!(error.message.contains("at least one attribute"), "{error}");

        let error = only_error(&[exact(&[("", "a")])]);
        assert_eq!(error.field, "spec.filters[0].exact[]");
        assert!(
            error.message.contains("not a valid attribute name"),
            "{error}"
        );

        let error = only_error(&[SubscriptionsAPIFilter {
            suffix: Some(map(&[("type", "")])),
            ..Default::default()
        }]);
        assert_eq!(error.field, "spec.filters[0].suffix[type]");
        assert!(error.message.contains("empty value"), "{error}");
    }

    #[test]
    fn all_and_any_need_children_and_check_them() {
        let error = only_error(&[SubscriptionsAPIFilter {
            all: Some(vec![]),
            ..Default::default()
        }]);
        assert_eq!(error.field, "spec.filters[0].all");
        assert!(
            error.message.contains("at least one nested filter"),
            "{error}"
        );

        let error = only_error(&[SubscriptionsAPIFilter {
            any: Some(vec![
                exact(&[("type", "a")]),
                SubscriptionsAPIFilter::default(),
            ]),
            ..Default::default()
        }]);
        assert_eq!(error.field, "spec.filters[0].any[1]");
        assert!(error.message.starts_with("no dialect"), "{error}");
    }

    #[test]
    fn not_checks_its_child() {
        let error = only_error(&[SubscriptionsAPIFilter {
            not: Some(Box::new(SubscriptionsAPIFilter::default())),
            ..Default::default()
        }]);
        assert_eq!(error.field, "spec.filters[0].not");
        assert!(error.message.starts_with("no dialect"), "{error}");
    }

    #[test]
    fn cesql_must_not_be_empty() {
        let error = only_error(&[cesql("  ")]);
        assert_eq!(error.field, "spec.filters[0].cesql");
        assert!(
            error.message.contains("CloudEvents SQL expression"),
            "{error}"
        );
    }

    #[test]
    fn a_cesql_syntax_error_names_the_entry_and_the_position() {
        let error = only_error(&[
            exact(&[("type", "a")]),
            exact(&[("source", "b")]),
            cesql("type LIKE"),
        ]);
        assert_eq!(
            error.to_string(),
            "spec.filters[2].cesql: invalid CloudEvents SQL expression at position 9: \
             expected a string literal as the LIKE pattern, found the end of the expression"
        );
        let error = only_error(&[SubscriptionsAPIFilter {
            all: Some(vec![
                exact(&[("type", "a")]),
                SubscriptionsAPIFilter {
                    not: Some(Box::new(cesql("type = 'a' AND"))),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }]);
        assert_eq!(error.field, "spec.filters[0].all[1].not.cesql");
        assert_eq!(
            error.message,
            "invalid CloudEvents SQL expression at position 14: expected an expression, \
             found the end of the expression"
        );
    }

    #[test]
    fn unknown_cesql_functions_are_reported_when_the_trigger_is_validated() {
        let error = only_error(&[cesql("LOWERCASE(type) = 'x'")]);
        assert_eq!(error.field, "spec.filters[0].cesql");
        assert!(
            error.message.starts_with(
                "invalid CloudEvents SQL expression at position 0: unknown function LOWERCASE"
            ),
            "{error}"
        );
    }

    #[test]
    fn every_invalid_entry_is_reported() {
        let (_, errors) = check(&[
            cesql("type ="),
            SubscriptionsAPIFilter::default(),
            exact(&[("type", "")]),
            cesql("priority > 3"),
        ]);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.filters[0].cesql",
                "spec.filters[1]",
                "spec.filters[2].exact[type]"
            ]
        );
    }
}
