//! The built-in functions: the specification's string and math functions and the casts.
//!
//! Names are resolved, and arities checked, when the expression is compiled; a call that
//! cannot be dispatched is a compile error, so a trigger with a misspelt function is
//! reported at once rather than silently never matching. Arguments are cast to the
//! parameter types (String, Integer) like operator operands; indices count characters,
//! not bytes.

use std::borrow::Cow;
use std::ops::Range;

use crate::event::Event;

use super::ast::{Expr, Function, Type};
use super::eval::{
    Failure, Outcome, finish, into_string, operand, to_boolean_explicit, to_integer, with_text,
};
use super::value::{EvalError, Value};

impl Function {
    /// Calls the function; `args` has an arity that [`Function::resolve`] accepted.
    pub(super) fn call<'a>(self, args: &'a [Expr], event: &'a Event) -> Outcome<'a> {
        let ty = self.result_type();
        let arg = |i: usize| -> Outcome<'a> {
            match args.get(i) {
                Some(expr) => operand(expr, event, ty),
                // resolve() checked the arity, so this is not reached; fail safe anyway.
                None => Err(Failure {
                    value: ty.zero(),
                    error: EvalError::FunctionEvaluation,
                }),
            }
        };
        match self {
            Function::Length => {
                let count = with_text(&arg(0)?, |s| s.chars().count());
                Ok(Value::Integer(i32::try_from(count).unwrap_or(i32::MAX)))
            }
            Function::Concat => concat(None, args, event),
            Function::ConcatWs => {
                let delimiter = into_string(arg(0)?);
                concat(Some(&delimiter), &args[1..], event)
            }
            Function::Lower => {
                let text = with_text(&arg(0)?, str::to_lowercase);
                Ok(Value::String(Cow::Owned(text)))
            }
            Function::Upper => {
                let text = with_text(&arg(0)?, str::to_uppercase);
                Ok(Value::String(Cow::Owned(text)))
            }
            Function::Trim => Ok(Value::String(trim(into_string(arg(0)?)))),
            Function::Left | Function::Right => {
                let text = into_string(arg(0)?);
                let (n, error) = to_integer(&arg(1)?);
                let Ok(n) = usize::try_from(n) else {
                    // A negative length returns the text unchanged, with an error.
                    let error = error.or(Some(EvalError::FunctionEvaluation));
                    return finish(Value::String(text), error);
                };
                let count = text.chars().count();
                let range = if self == Function::Left {
                    0..n.min(count)
                } else {
                    count.saturating_sub(n)..count
                };
                finish(Value::String(char_slice(text, range)), error)
            }
            Function::Substring => {
                let text = into_string(arg(0)?);
                let (position, position_error) = to_integer(&arg(1)?);
                let (length, length_error) = match args.len() {
                    3 => {
                        let (length, error) = to_integer(&arg(2)?);
                        (Some(length), error)
                    }
                    _ => (None, None),
                };
                let error = position_error.or(length_error);
                match substring_range(text.chars().count(), position, length) {
                    Some(range) => finish(Value::String(char_slice(text, range)), error),
                    None => finish(
                        Type::String.zero(),
                        error.or(Some(EvalError::FunctionEvaluation)),
                    ),
                }
            }
            Function::Abs => {
                let (i, error) = to_integer(&arg(0)?);
                match i.checked_abs() {
                    Some(abs) => finish(Value::Integer(abs), error),
                    None => finish(Value::Integer(i32::MAX), error.or(Some(EvalError::Math))),
                }
            }
            Function::Int => {
                let (i, error) = to_integer(&arg(0)?);
                finish(Value::Integer(i), error)
            }
            Function::Bool => {
                let (b, error) = to_boolean_explicit(&arg(0)?);
                finish(Value::Boolean(b), error)
            }
            Function::String => Ok(Value::String(into_string(arg(0)?))),
            Function::IsInt => Ok(Value::Boolean(to_integer(&arg(0)?).1.is_none())),
            Function::IsBool => Ok(Value::Boolean(to_boolean_explicit(&arg(0)?).1.is_none())),
        }
    }
}

/// Concatenates the String casts of `args`, with `delimiter` between them.
fn concat<'a>(delimiter: Option<&str>, args: &'a [Expr], event: &'a Event) -> Outcome<'a> {
    let mut out = String::new();
    for (i, expr) in args.iter().enumerate() {
        let value = operand(expr, event, Type::String)?;
        if i > 0 {
            out.push_str(delimiter.unwrap_or_default());
        }
        with_text(&value, |s| out.push_str(s));
    }
    Ok(Value::String(Cow::Owned(out)))
}

fn trim(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => {
            let trimmed = s.trim();
            if trimmed.len() == s.len() {
                Cow::Owned(s)
            } else {
                Cow::Owned(trimmed.to_owned())
            }
        }
    }
}

/// The characters of `SUBSTRING(x, position[, length])` for a text of `count` characters,
/// as a range of character indices; `None` when the arguments are out of range (a
/// position beyond either end, or a negative length).
fn substring_range(count: usize, position: i32, length: Option<i32>) -> Option<Range<usize>> {
    // Characters are counted in i64 so that no i32 argument can overflow.
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let position = i64::from(position);
    if position > count || position < -count || length.is_some_and(|l| l < 0) {
        return None;
    }
    if position == 0 {
        return Some(0..0);
    }
    // 1 is the first character; -1 the last.
    let start = if position > 0 {
        position - 1
    } else {
        count + position
    };
    let end = match length {
        Some(length) => (start + i64::from(length)).min(count),
        None => count,
    };
    // 0 <= start <= end <= count, all of which came from usize.
    let index = |i: i64| usize::try_from(i).unwrap_or(0);
    Some(index(start)..index(end))
}

/// The characters `range` of `text` (character indices), borrowed when `text` is.
fn char_slice(text: Cow<'_, str>, range: Range<usize>) -> Cow<'_, str> {
    let byte = |s: &str, char_index: usize| {
        s.char_indices()
            .nth(char_index)
            .map_or(s.len(), |(byte, _)| byte)
    };
    let (start, end) = (byte(&text, range.start), byte(&text, range.end));
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(&s[start..end]),
        Cow::Owned(s) if start == 0 && end == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s[start..end].to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Expression;
    use super::*;
    use crate::event::AttributeValue;

    fn eval(source: &str) -> (Value<'static>, Option<EvalError>) {
        let mut event = Event::new("1", "/src", "t").unwrap();
        event
            .set_extension("name", AttributeValue::String(" Ça va ".into()))
            .unwrap();
        let expression = Expression::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        let evaluation = expression.evaluate(&event);
        (evaluation.value.into_owned(), evaluation.error)
    }

    fn string(source: &str) -> String {
        match eval(source) {
            (Value::String(s), None) => s.into_owned(),
            other => panic!("{source}: {other:?}"),
        }
    }

    #[test]
    fn string_functions_count_characters() {
        assert_eq!(eval("LENGTH(name)"), (Value::Integer(7), None));
        assert_eq!(string("TRIM(name)"), "Ça va");
        assert_eq!(string("UPPER(name)"), " ÇA VA ");
        assert_eq!(string("LOWER(TRIM(name))"), "ça va");
        assert_eq!(string("LEFT(TRIM(name), 2)"), "Ça");
        assert_eq!(string("RIGHT(name, 3)"), "va ");
        assert_eq!(string("SUBSTRING(name, 2, 2)"), "Ça");
        assert_eq!(string("SUBSTRING(name, -3)"), "va ");
        assert_eq!(string("CONCAT_WS('-', 1, TRUE, 'x')"), "1-true-x");
        assert_eq!(string("CONCAT(1, -2)"), "1-2");
        assert_eq!(string("STRING(-2147483648)"), "-2147483648");
    }

    #[test]
    fn argument_errors_give_the_zero_value() {
        assert_eq!(
            eval("LENGTH(missing)"),
            (Value::Integer(0), Some(EvalError::MissingAttribute))
        );
        assert_eq!(
            eval("CONCAT('a', missing)"),
            (Value::String("".into()), Some(EvalError::MissingAttribute))
        );
        assert_eq!(
            eval("LEFT('abc', 'x')"),
            (Value::String("".into()), Some(EvalError::Cast))
        );
        assert_eq!(
            eval("SUBSTRING('abc', 1, -1)"),
            (
                Value::String("".into()),
                Some(EvalError::FunctionEvaluation)
            )
        );
        assert_eq!(
            eval("SUBSTRING('abc', 2147483647, 2147483647)"),
            (
                Value::String("".into()),
                Some(EvalError::FunctionEvaluation)
            )
        );
        assert_eq!(
            eval("SUBSTRING('abc', 3, 2147483647)"),
            (Value::String("c".into()), None)
        );
        assert_eq!(
            eval("SUBSTRING('abc', -2147483648)"),
            (
                Value::String("".into()),
                Some(EvalError::FunctionEvaluation)
            )
        );
    }

    #[test]
    fn casts_and_predicates() {
        assert_eq!(eval("INT('+12')"), (Value::Integer(12), None));
        assert_eq!(
            eval("INT(' 12')"),
            (Value::Integer(0), Some(EvalError::Cast))
        );
        assert_eq!(
            eval("INT('2147483648')"),
            (Value::Integer(0), Some(EvalError::Cast))
        );
        assert_eq!(eval("BOOL('tRuE')"), (Value::Boolean(true), None));
        assert_eq!(eval("IS_INT('-3')"), (Value::Boolean(true), None));
        assert_eq!(eval("IS_INT('x')"), (Value::Boolean(false), None));
        assert_eq!(eval("IS_BOOL('FALSE')"), (Value::Boolean(true), None));
        assert_eq!(eval("IS_BOOL(7)"), (Value::Boolean(true), None));
        assert_eq!(eval("IS_BOOL('yes')"), (Value::Boolean(false), None));
    }

    #[test]
    fn resolution_is_case_insensitive_and_checks_arity() {
        assert_eq!(Function::resolve("concat_ws", 3), Ok(Function::ConcatWs));
        assert_eq!(Function::resolve("Substring", 3), Ok(Function::Substring));
        assert_eq!(
            Function::resolve("substring", 4).unwrap_err(),
            "SUBSTRING takes 2 to 3 arguments, not 4"
        );
        assert_eq!(
            Function::resolve("CONCAT_WS", 0).unwrap_err(),
            "CONCAT_WS takes at least 1 argument, not 0"
        );
        assert!(
            Function::resolve("NOPE", 0)
                .unwrap_err()
                .starts_with("unknown function NOPE")
        );
    }
}
