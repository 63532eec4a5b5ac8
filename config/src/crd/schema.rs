//! What the derived schemas need to become CRDs the API server accepts and that check what
//! Knative's admission webhook checks.
//!
//! - Structural schemas cannot refer to themselves, so the recursive filters (`all`, `any`,
//!   `not`) are objects of any content below the first level, as in Knative's own CRD (the
//!   manifest types say so where they derive their schema, see
//!   [`SubscriptionsAPIFilter`](crate::manifest::SubscriptionsAPIFilter)). Weft's validation
//!   checks the nested levels.
//! - `nullable` is removed everywhere, so that a `null` is pruned like an absent field (as
//!   Knative's CRD has it), and `has(self.x)` in a rule means "given".
//! - `broker` and `trigger` add bounds and CEL rules (`x-kubernetes-validations`) at named
//!   paths. The API server estimates the cost of every rule from the bounds of what it reads and
//!   refuses a CRD whose rules could cost too much; every list or map a rule walks over has a
//!   `maxItems` or `maxProperties`, and every string it compares has a `maxLength`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSON, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool, ValidationRule,
};

/// The most entries in `spec.filters`.
pub const MAX_FILTERS: i64 = 64;
/// The most attributes in one `exact`, `prefix` or `suffix` filter, or in `spec.filter`.
pub const MAX_FILTER_ATTRIBUTES: i64 = 64;
/// The longest broker name: a Kubernetes object name.
pub const MAX_NAME_LENGTH: i64 = 253;

/// A CEL rule and the message the API server answers with when it fails.
fn rule(rule: &str, message: &str) -> ValidationRule {
    ValidationRule {
        rule: rule.to_owned(),
        message: Some(message.to_owned()),
        ..ValidationRule::default()
    }
}

/// A rule about one field of the object it is on: the error names `field` (e.g. `.broker`),
/// with a Kubernetes `reason` (`FieldValueRequired`, `FieldValueInvalid`, …).
fn field_rule(text: &str, message: &str, field: &str, reason: &str) -> ValidationRule {
    ValidationRule {
        field_path: Some(field.to_owned()),
        reason: Some(reason.to_owned()),
        ..rule(text, message)
    }
}

fn add_rule(schema: &mut JSONSchemaProps, rule: ValidationRule) {
    schema
        .x_kubernetes_validations
        .get_or_insert_with(Vec::new)
        .push(rule);
}

/// The schema at `path` below `schema`: property names separated by dots, `[]` after a name
/// for the items of that list (`spec.filters[].exact`).
///
/// # Panics
/// When the path does not exist: the schemas are generated from Weft's own types, so this is
/// a mistake in this file, caught by every test that builds a CRD.
fn at<'a>(schema: &'a mut JSONSchemaProps, path: &str) -> &'a mut JSONSchemaProps {
    path.split('.').fold(schema, |schema, segment| {
        let (name, items) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment, false),
        };
        let property = schema
            .properties
            .as_mut()
            .and_then(|properties| properties.get_mut(name))
            .unwrap_or_else(|| panic!("the CRD schema has no {path:?} ({name:?} is missing)"));
        if !items {
            return property;
        }
        match property.items.as_mut() {
            Some(JSONSchemaPropsOrArray::Schema(items)) => items,
            _ => panic!("{path:?}: {name:?} is not a list"),
        }
    })
}

/// Removes `nullable` from `schema` and everything below it.
pub(crate) fn strip_nullable(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    for property in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_nullable(property);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(items)) => strip_nullable(items),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(strip_nullable),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = schema.additional_properties.as_mut() {
        strip_nullable(values);
    }
}

/// Knative's attribute names: lowercase letters and digits, starting with a letter.
const ATTRIBUTE_NAMES: &str = "self.all(name, name.matches('^[a-z][a-z0-9]*$'))";
const ATTRIBUTE_NAMES_MESSAGE: &str =
    "Attribute name must start with a letter and can only contain lowercase alphanumeric";

/// Bounds and rules of an attribute map of `spec.filter` or of a filter dialect.
fn attribute_map(schema: &mut JSONSchemaProps, non_empty: bool) {
    schema.max_properties = Some(MAX_FILTER_ATTRIBUTES);
    add_rule(schema, rule(ATTRIBUTE_NAMES, ATTRIBUTE_NAMES_MESSAGE));
    if non_empty {
        schema.min_properties = Some(1);
        add_rule(
            schema,
            rule(
                "self.all(name, size(self[name]) > 0)",
                "the value to match must not be empty",
            ),
        );
    }
}

/// A `Destination` needs a `ref` or a `uri`.
fn destination(schema: &mut JSONSchemaProps) {
    add_rule(
        schema,
        rule(
            "has(self.ref) || has(self.uri)",
            "expected at least one, got none: ref, uri",
        ),
    );
}

/// The checks of Knative's `DeliverySpec.Validate` that need no parsing: `retry` is not
/// negative, `backoffPolicy` and `format` are one of their values. Durations stay strings.
fn delivery(schema: &mut JSONSchemaProps) {
    at(schema, "retry").minimum = Some(0.0);
    at(schema, "backoffPolicy").enum_ = Some(strings(&["linear", "exponential"]));
    at(schema, "format").enum_ = Some(strings(&["json", "binary"]));
    destination(at(schema, "deadLetterSink"));
}

fn strings(values: &[&str]) -> Vec<JSON> {
    values
        .iter()
        .map(|value| JSON(serde_json::Value::from(*value)))
        .collect()
}

/// The Broker CRD's additions; `root` is its `openAPIV3Schema`.
pub(crate) fn broker(root: &mut JSONSchemaProps) {
    // A Broker without `spec` is valid: the API server fills in `spec: {}`, so that the
    // required `spec` of `BrokerResource` is always there.
    at(root, "spec").default = Some(JSON(serde_json::json!({})));
    delivery(at(root, "spec.delivery"));
}

/// The Trigger CRD's additions; `root` is its `openAPIV3Schema`.
pub(crate) fn trigger(root: &mut JSONSchemaProps) {
    let spec = at(root, "spec");
    for rule in [
        field_rule(
            "has(self.brokerRef) || (has(self.broker) && size(self.broker) > 0)",
            "missing field(s): spec.broker (the name of a broker in the trigger's namespace)",
            ".broker",
            "FieldValueRequired",
        ),
        field_rule(
            "!has(self.brokerRef) || !has(self.broker) || size(self.broker) == 0",
            "expected exactly one, got both: spec.broker, spec.brokerRef",
            ".brokerRef",
            "FieldValueInvalid",
        ),
        field_rule(
            "(has(self.broker) ? self.broker : '') == (has(oldSelf.broker) ? oldSelf.broker : '')",
            "Immutable fields changed (-old +new): spec.broker; a trigger cannot move to \
             another broker, delete it and create it again",
            ".broker",
            "FieldValueForbidden",
        ),
        field_rule(
            "has(self.subscriber)",
            "missing field(s): spec.subscriber",
            ".subscriber",
            "FieldValueRequired",
        ),
    ] {
        add_rule(spec, rule);
    }
    at(spec, "broker").max_length = Some(MAX_NAME_LENGTH);
    destination(at(spec, "subscriber"));
    delivery(at(spec, "delivery"));
    attribute_map(at(spec, "filter.attributes"), false);

    at(spec, "filters").max_items = Some(MAX_FILTERS);
    let filter = at(spec, "filters[]");
    add_rule(
        filter,
        rule(
            "[has(self.all), has(self.any), has(self.not), has(self.exact), has(self.prefix), \
             has(self.suffix), has(self.cesql)].filter(given, given).size() == 1",
            "a filter sets exactly one dialect: all, any, not, exact, prefix, suffix or cesql",
        ),
    );
    for dialect in ["exact", "prefix", "suffix"] {
        attribute_map(at(filter, dialect), true);
    }
    at(filter, "cesql").min_length = Some(1);
}
