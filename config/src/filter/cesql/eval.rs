//! Evaluation of a compiled expression against an event, and CESQL's type casts.
//!
//! Every node returns a value; when something goes wrong it also returns an error (an
//! [`Outcome`] of `Err(Failure)` carries both). The rules, from the specification and its
//! test kit:
//! - a node whose operand failed returns the zero value of its own type (`false`, `0`,
//!   `""`) and that error, without evaluating further operands: `missing / 0` is `0` with
//!   a missing-attribute error, not a math error;
//! - a node whose own cast or computation fails still computes with the cast's zero value
//!   and reports the error: `NOT 10` is `true` with a cast error, `5 / 0` is `0` with a
//!   math error, `ABS(-2147483648)` is `2147483647` with a math error;
//! - `AND` and `OR` stop at the first operand that decides the result.
//!
//! Attribute values are borrowed from the event and string literals from the expression;
//! only functions that build new text (CONCAT, LOWER, …) and casts of integers to strings
//! allocate.

use std::borrow::Cow;

use crate::event::{AttributeRef, Event};

use super::ast::{ArithmeticOp, ComparisonOp, Expr, Literal, LogicOp, Type};
use super::value::{EvalError, Value};
use crate::filter::text::{IntText, bool_text};

/// The result of evaluating a node.
pub(super) type Outcome<'a> = Result<Value<'a>, Failure<'a>>;

/// A value computed despite an error, and the error.
#[derive(Debug)]
pub(super) struct Failure<'a> {
    pub(super) value: Value<'a>,
    pub(super) error: EvalError,
}

impl Type {
    /// The zero value of the type.
    pub(super) fn zero(self) -> Value<'static> {
        match self {
            Type::Boolean => Value::Boolean(false),
            Type::Integer => Value::Integer(0),
            Type::String => Value::String(Cow::Borrowed("")),
        }
    }
}

impl<'a> From<AttributeRef<'a>> for Value<'a> {
    fn from(value: AttributeRef<'a>) -> Self {
        match value {
            AttributeRef::String(s) => Value::String(Cow::Borrowed(s)),
            AttributeRef::Integer(i) => Value::Integer(i),
            AttributeRef::Boolean(b) => Value::Boolean(b),
        }
    }
}

/// Evaluates an operand of a node of type `parent`: its value, or on failure the
/// parent's zero value with the operand's error.
pub(super) fn operand<'a>(expr: &'a Expr, event: &'a Event, parent: Type) -> Outcome<'a> {
    expr.eval(event).map_err(|failure| Failure {
        value: parent.zero(),
        error: failure.error,
    })
}

/// A computed value, with the node's own error if there was one.
pub(super) fn finish(value: Value<'_>, error: Option<EvalError>) -> Outcome<'_> {
    match error {
        None => Ok(value),
        Some(error) => Err(Failure { value, error }),
    }
}

/// Casts to Integer: strings are parsed as base-10 32-bit integers (an optional sign, then
/// digits), booleans are 1 and 0. A failed cast gives 0 and a cast error.
pub(super) fn to_integer(value: &Value<'_>) -> (i32, Option<EvalError>) {
    match value {
        Value::Integer(i) => (*i, None),
        Value::Boolean(b) => (i32::from(*b), None),
        Value::String(s) => match s.parse::<i32>() {
            Ok(i) => (i, None),
            Err(_) => (0, Some(EvalError::Cast)),
        },
    }
}

/// The implicit cast to Boolean done by operators: strings `true` / `false` in any case.
/// An integer is a cast error here (the test kit's `NOT 10`), although the explicit
/// `BOOL(10)` is defined; see [`to_boolean_explicit`].
pub(super) fn to_boolean(value: &Value<'_>) -> (bool, Option<EvalError>) {
    match value {
        Value::Boolean(b) => (*b, None),
        Value::String(s) => string_to_boolean(s),
        Value::Integer(_) => (false, Some(EvalError::Cast)),
    }
}

/// The explicit cast `BOOL(x)`: as [`to_boolean`], and integers are `true` unless 0.
pub(super) fn to_boolean_explicit(value: &Value<'_>) -> (bool, Option<EvalError>) {
    match value {
        Value::Integer(i) => (*i != 0, None),
        other => to_boolean(other),
    }
}

fn string_to_boolean(s: &str) -> (bool, Option<EvalError>) {
    if s.eq_ignore_ascii_case("true") {
        (true, None)
    } else if s.eq_ignore_ascii_case("false") {
        (false, None)
    } else {
        (false, Some(EvalError::Cast))
    }
}

/// Casts to String (always defined), keeping borrowed text borrowed.
pub(super) fn into_string(value: Value<'_>) -> Cow<'_, str> {
    match value {
        Value::String(s) => s,
        Value::Integer(i) => Cow::Owned(i.to_string()),
        Value::Boolean(b) => Cow::Borrowed(bool_text(b)),
    }
}

/// Calls `f` with the String cast of `value`, without allocating.
pub(super) fn with_text<R>(value: &Value<'_>, f: impl FnOnce(&str) -> R) -> R {
    match value {
        Value::String(s) => f(s),
        Value::Integer(i) => f(IntText::new(*i).as_str()),
        Value::Boolean(b) => f(bool_text(*b)),
    }
}

/// `x = y`: `x` is cast to the type of `y` (the rule for ambiguous binary operators), and
/// `IN` casts each element to the type of its left operand in the same way.
fn equal(x: &Value<'_>, y: &Value<'_>) -> (bool, Option<EvalError>) {
    match y {
        Value::Boolean(b) => {
            let (a, error) = to_boolean(x);
            (a == *b, error)
        }
        Value::Integer(b) => {
            let (a, error) = to_integer(x);
            (a == *b, error)
        }
        Value::String(b) => (with_text(x, |a| a == b), None),
    }
}

impl Expr {
    /// Evaluates the node against `event`.
    pub(super) fn eval<'a>(&'a self, event: &'a Event) -> Outcome<'a> {
        match self {
            Expr::Literal(Literal::Boolean(b)) => Ok(Value::Boolean(*b)),
            Expr::Literal(Literal::Integer(i)) => Ok(Value::Integer(*i)),
            Expr::Literal(Literal::String(s)) => Ok(Value::String(Cow::Borrowed(s))),
            Expr::Attribute(name) => match event.attribute(name) {
                Some(value) => Ok(value.into()),
                // The type of a missing attribute is unknown, so its zero value is false.
                None => Err(Failure {
                    value: Type::Boolean.zero(),
                    error: EvalError::MissingAttribute,
                }),
            },
            Expr::Exists(name) => Ok(Value::Boolean(event.attribute(name).is_some())),
            Expr::Not(x) => {
                let (b, error) = to_boolean(&operand(x, event, Type::Boolean)?);
                finish(Value::Boolean(!b), error)
            }
            Expr::Negate(x) => {
                let (i, error) = to_integer(&operand(x, event, Type::Integer)?);
                match i.checked_neg() {
                    Some(n) => finish(Value::Integer(n), error),
                    None => finish(Value::Integer(0), error.or(Some(EvalError::Math))),
                }
            }
            Expr::Arithmetic { op, left, right } => {
                let (a, left_error) = to_integer(&operand(left, event, Type::Integer)?);
                let (b, right_error) = to_integer(&operand(right, event, Type::Integer)?);
                let (value, math_error) = arithmetic(*op, a, b);
                finish(
                    Value::Integer(value),
                    left_error.or(right_error).or(math_error),
                )
            }
            Expr::Comparison { op, left, right } => {
                let x = operand(left, event, Type::Boolean)?;
                let y = operand(right, event, Type::Boolean)?;
                let (result, error) = compare(*op, &x, &y);
                finish(Value::Boolean(result), error)
            }
            Expr::Logic { op, operands } => logic(*op, operands, event),
            Expr::Like {
                value,
                pattern,
                negated,
            } => {
                let value = operand(value, event, Type::Boolean)?;
                let matched = with_text(&value, |text| pattern.matches(text));
                Ok(Value::Boolean(matched != *negated))
            }
            Expr::In {
                value,
                set,
                negated,
            } => {
                let x = operand(value, event, Type::Boolean)?;
                let mut first_error = None;
                let mut found = false;
                for element in set {
                    let y = operand(element, event, Type::Boolean)?;
                    // Cast the element to the type of x: x = y with the operands swapped.
                    let (eq, error) = equal(&y, &x);
                    first_error = first_error.or(error);
                    if eq {
                        found = true;
                        break;
                    }
                }
                finish(Value::Boolean(found != *negated), first_error)
            }
            Expr::Call { function, args } => function.call(args, event),
        }
    }
}

/// Integer arithmetic: division truncates toward zero and the remainder has the sign of the
/// dividend. Division or remainder by zero, and results outside 32 bits, give 0 and a math
/// error.
fn arithmetic(op: ArithmeticOp, a: i32, b: i32) -> (i32, Option<EvalError>) {
    let result = match op {
        ArithmeticOp::Add => a.checked_add(b),
        ArithmeticOp::Subtract => a.checked_sub(b),
        ArithmeticOp::Multiply => a.checked_mul(b),
        ArithmeticOp::Divide => a.checked_div(b),
        // i32::MIN % -1 is 0 mathematically; only a zero divisor is an error.
        ArithmeticOp::Modulo => (b != 0).then(|| a.wrapping_rem(b)),
    };
    match result {
        Some(value) => (value, None),
        None => (0, Some(EvalError::Math)),
    }
}

fn compare(op: ComparisonOp, x: &Value<'_>, y: &Value<'_>) -> (bool, Option<EvalError>) {
    let ordering = match op {
        ComparisonOp::Equal => return equal(x, y),
        ComparisonOp::NotEqual => {
            let (eq, error) = equal(x, y);
            return (!eq, error);
        }
        ComparisonOp::Less => i32::lt,
        ComparisonOp::LessOrEqual => i32::le,
        ComparisonOp::Greater => i32::gt,
        ComparisonOp::GreaterOrEqual => i32::ge,
    };
    let (a, left_error) = to_integer(x);
    let (b, right_error) = to_integer(y);
    (ordering(&a, &b), left_error.or(right_error))
}

/// `x0 op (x1 op (… op xn))` evaluated as one loop.
///
/// It gives what the nested binary form gives: a failing operand, or a cast error that
/// happens inside a nested pair, makes the result `false` with that error; a cast error of
/// the outermost pair (`x0`, or `x1` when there are only two operands) keeps the computed
/// value.
fn logic<'a>(op: LogicOp, operands: &'a [Expr], event: &'a Event) -> Outcome<'a> {
    let outermost = |i: usize| i == 0 || (i == 1 && operands.len() == 2);
    let mut own_error = None;
    let mut parity = false;
    for (i, x) in operands.iter().enumerate() {
        let (b, error) = to_boolean(&operand(x, event, Type::Boolean)?);
        if let Some(error) = error {
            if !outermost(i) {
                return finish(Value::Boolean(false), Some(error));
            }
            own_error = own_error.or(Some(error));
        }
        match op {
            LogicOp::And if !b => return finish(Value::Boolean(false), own_error),
            LogicOp::Or if b => return finish(Value::Boolean(true), own_error),
            LogicOp::Xor => parity ^= b,
            LogicOp::And | LogicOp::Or => {}
        }
    }
    let value = match op {
        LogicOp::And => true,
        LogicOp::Or => false,
        LogicOp::Xor => parity,
    };
    finish(Value::Boolean(value), own_error)
}

#[cfg(test)]
mod tests {
    use super::super::Expression;
    use super::*;
    use crate::event::AttributeValue;

    fn event() -> Event {
        let mut e = Event::new("id1", "/src", "com.example.created").unwrap();
        e.set_extension("priority", AttributeValue::Integer(5))
            .unwrap();
        e.set_extension("flag", AttributeValue::Boolean(true))
            .unwrap();
        e.set_extension("count", AttributeValue::String("12".into()))
            .unwrap();
        e
    }

    fn eval(source: &str) -> (Value<'static>, Option<EvalError>) {
        let expression = Expression::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        let event = event();
        let evaluation = expression.evaluate(&event);
        (evaluation.value.into_owned(), evaluation.error)
    }

    fn value(source: &str) -> Value<'static> {
        let (value, error) = eval(source);
        assert_eq!(error, None, "{source}");
        value
    }

    #[test]
    fn typed_extensions_keep_their_type() {
        assert_eq!(value("priority"), Value::Integer(5));
        assert_eq!(value("priority + 1"), Value::Integer(6));
        assert_eq!(value("flag"), Value::Boolean(true));
        assert_eq!(value("count * 2"), Value::Integer(24));
        assert_eq!(value("priority = '5'"), Value::Boolean(true));
        assert_eq!(value("'5' = priority"), Value::Boolean(true));
        assert_eq!(value("priority LIKE '_'"), Value::Boolean(true));
        assert_eq!(value("flag = 'true'"), Value::Boolean(true));
    }

    #[test]
    fn arithmetic_overflow_is_a_math_error() {
        assert_eq!(
            eval("2147483647 + 1"),
            (Value::Integer(0), Some(EvalError::Math))
        );
        assert_eq!(
            eval("-2147483648 - 1"),
            (Value::Integer(0), Some(EvalError::Math))
        );
        assert_eq!(
            eval("65536 * 65536"),
            (Value::Integer(0), Some(EvalError::Math))
        );
        assert_eq!(
            eval("-2147483648 / -1"),
            (Value::Integer(0), Some(EvalError::Math))
        );
        assert_eq!(value("-2147483648 % -1"), Value::Integer(0));
        assert_eq!(
            eval("-(-2147483648)"),
            (Value::Integer(0), Some(EvalError::Math))
        );
        assert_eq!(value("-7 / 2"), Value::Integer(-3));
        assert_eq!(value("-7 % 2"), Value::Integer(-1));
        assert_eq!(value("7 % -2"), Value::Integer(1));
    }

    #[test]
    fn comparisons_cast_the_left_operand_to_the_right_type() {
        assert_eq!(value("'10' > '9'"), Value::Boolean(true));
        assert_eq!(
            eval("'abc' < 1"),
            (Value::Boolean(true), Some(EvalError::Cast))
        );
        assert_eq!(
            eval("1 = TRUE"),
            (Value::Boolean(false), Some(EvalError::Cast))
        );
        assert_eq!(value("TRUE = 'true'"), Value::Boolean(true));
        assert_eq!(value("1 = '1'"), Value::Boolean(true));
        assert_eq!(value("'01' = 1"), Value::Boolean(true));
        assert_eq!(value("1 = '01'"), Value::Boolean(false));
    }

    #[test]
    fn logic_chains_behave_like_their_nested_binary_form() {
        // a AND b OR c is a AND (b OR c), unlike standard SQL.
        assert_eq!(value("FALSE AND FALSE OR TRUE"), Value::Boolean(false));
        assert_eq!(value("TRUE OR FALSE AND FALSE"), Value::Boolean(true));
        assert_eq!(value("TRUE XOR TRUE XOR TRUE"), Value::Boolean(true));
        // Cast errors of the outermost pair keep the computed value.
        assert_eq!(
            eval("10 OR TRUE"),
            (Value::Boolean(true), Some(EvalError::Cast))
        );
        assert_eq!(eval("TRUE OR 10"), (Value::Boolean(true), None));
        assert_eq!(
            eval("FALSE OR 10"),
            (Value::Boolean(false), Some(EvalError::Cast))
        );
        // Nested ones make the whole chain false.
        assert_eq!(
            eval("FALSE OR 10 OR TRUE"),
            (Value::Boolean(false), Some(EvalError::Cast))
        );
        assert_eq!(
            eval("10 OR FALSE OR TRUE"),
            (Value::Boolean(true), Some(EvalError::Cast))
        );
        // Short-circuit: the missing attribute is never looked at.
        assert_eq!(value("FALSE AND missing"), Value::Boolean(false));
        assert_eq!(value("TRUE OR missing"), Value::Boolean(true));
        assert_eq!(
            eval("TRUE AND missing"),
            (Value::Boolean(false), Some(EvalError::MissingAttribute))
        );
    }

    #[test]
    fn in_casts_elements_to_the_left_type_and_stops_at_a_match() {
        assert_eq!(value("priority IN (1, '5', missing)"), Value::Boolean(true));
        assert_eq!(
            eval("priority IN (1, missing, 5)"),
            (Value::Boolean(false), Some(EvalError::MissingAttribute))
        );
        assert_eq!(
            eval("priority IN ('x', 5)"),
            (Value::Boolean(true), Some(EvalError::Cast))
        );
        assert_eq!(value("priority NOT IN (1, 2)"), Value::Boolean(true));
    }
}
