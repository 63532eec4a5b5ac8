//! Checks for a Trigger's filters: the legacy `spec.filter.attributes` map and the Subscriptions
//! API dialects of `spec.filters`, per Knative's webhook. CESQL text is only checked for being
//! present here; its syntax is the filter engine's business.

use std::collections::BTreeMap;

use crate::manifest::problem::FieldError;
use crate::manifest::types::SubscriptionsAPIFilter;
use crate::model::SubscriptionsFilter;

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

/// Checks the legacy `filter.attributes` map found at `field`.
pub(crate) fn attributes(
    attributes: &BTreeMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    for name in attributes.keys() {
        if !is_attribute_name(name) {
            errors.push(bad_attribute_name(format!("{field}[{name}]"), name));
        }
    }
}

/// Checks the `filters` list found at `field` and converts it.
pub(crate) fn filters(
    filters: &[SubscriptionsAPIFilter],
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<SubscriptionsFilter> {
    filters
        .iter()
        .enumerate()
        .filter_map(|(i, f)| filter(f, &format!("{field}[{i}]"), errors))
        .collect()
}

/// Checks one filter found at `field`; `None` when it is invalid.
fn filter(
    filter: &SubscriptionsAPIFilter,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<SubscriptionsFilter> {
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
    let converted = if let Some(map) = &filter.exact {
        SubscriptionsFilter::Exact(matches(map, &format!("{field}.exact"), errors))
    } else if let Some(map) = &filter.prefix {
        SubscriptionsFilter::Prefix(matches(map, &format!("{field}.prefix"), errors))
    } else if let Some(map) = &filter.suffix {
        SubscriptionsFilter::Suffix(matches(map, &format!("{field}.suffix"), errors))
    } else if let Some(children) = &filter.all {
        SubscriptionsFilter::All(nested(children, &format!("{field}.all"), errors))
    } else if let Some(children) = &filter.any {
        SubscriptionsFilter::Any(nested(children, &format!("{field}.any"), errors))
    } else if let Some(child) = &filter.not {
        SubscriptionsFilter::Not(Box::new(self::filter(
            child,
            &format!("{field}.not"),
            errors,
        )?))
    } else {
        let expression = filter.cesql.clone().unwrap_or_default();
        if expression.trim().is_empty() {
            errors.push(FieldError::new(
                format!("{field}.cesql"),
                "is empty; give a CloudEvents SQL expression (e.g. \"type LIKE 'com.example.%'\")",
            ));
        }
        SubscriptionsFilter::Cesql(expression)
    };
    (errors.len() == before).then_some(converted)
}

/// Checks an `exact`, `prefix` or `suffix` map found at `field`.
fn matches(
    map: &BTreeMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, String> {
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
    map.clone()
}

/// Checks the children of `all` or `any` found at `field`.
fn nested(
    children: &[SubscriptionsAPIFilter],
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<SubscriptionsFilter> {
    if children.is_empty() {
        errors.push(FieldError::new(
            field,
            "is empty; give at least one nested filter",
        ));
    }
    filters(children, field, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn exact(pairs: &[(&str, &str)]) -> SubscriptionsAPIFilter {
        SubscriptionsAPIFilter {
            exact: Some(map(pairs)),
            ..Default::default()
        }
    }

    fn check(list: &[SubscriptionsAPIFilter]) -> (Vec<SubscriptionsFilter>, Vec<FieldError>) {
        let mut errors = Vec::new();
        let converted = filters(list, "spec.filters", &mut errors);
        (converted, errors)
    }

    fn only_error(list: &[SubscriptionsAPIFilter]) -> FieldError {
        let (_, errors) = check(list);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn attribute_names_follow_knative() {
        for good in ["type", "source", "myext1", "a"] {
            assert!(is_attribute_name(good), "{good}");
        }
        for bad in ["", "Type", "1type", "my-ext", "my_ext", "é"] {
            assert!(!is_attribute_name(bad), "{bad}");
        }
        let mut errors = Vec::new();
        attributes(
            &map(&[("type", "x"), ("Source", "")]),
            "spec.filter.attributes",
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.filter.attributes[Source]");
        assert!(errors[0].message.contains("lowercase letters and digits"));
    }

    #[test]
    fn every_dialect_converts() {
        let cesql = SubscriptionsAPIFilter {
            cesql: Some("source LIKE '%x'".into()),
            ..Default::default()
        };
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
                all: Some(vec![exact(&[("type", "a")]), cesql.clone()]),
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
        let (converted, errors) = check(&list);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            converted,
            [
                SubscriptionsFilter::Exact(map(&[("type", "a")])),
                SubscriptionsFilter::Prefix(map(&[("type", "com.")])),
                SubscriptionsFilter::Suffix(map(&[("type", ".created")])),
                SubscriptionsFilter::All(vec![
                    SubscriptionsFilter::Exact(map(&[("type", "a")])),
                    SubscriptionsFilter::Cesql("source LIKE '%x'".into()),
                ]),
                SubscriptionsFilter::Any(vec![SubscriptionsFilter::Exact(map(&[("type", "b")]))]),
                SubscriptionsFilter::Not(Box::new(SubscriptionsFilter::Exact(map(&[(
                    "subject", "s"
                )])))),
            ]
        );
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
        let error = only_error(&[SubscriptionsAPIFilter {
            cesql: Some("  ".into()),
            ..Default::default()
        }]);
        assert_eq!(error.field, "spec.filters[0].cesql");
        assert!(
            error.message.contains("CloudEvents SQL expression"),
            "{error}"
        );
    }
}
