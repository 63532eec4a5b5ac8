//! CloudEvents SQL (CESQL) v1: the `cesql` filter dialect.
//!
//! An [`Expression`] is compiled once, when its trigger is validated, into a small tree;
//! [`Expression::matches`] then walks it for each event, borrowing attribute values from
//! the event and never re-parsing. A filter passes only when the expression evaluates to
//! Boolean `true` without any error; a missing attribute, a failed cast, a division by
//! zero or a non-boolean result means the event does not match.
//!
//! What the specification leaves open, and what Weft does:
//! - `AND`, `OR` and `XOR` share one precedence level and associate to the right, as in
//!   the specification's grammar (and so in every CloudEvents SDK): `a AND b OR c` means
//!   `a AND (b OR c)`. Use parentheses.
//! - Integer overflow in `+`, `-`, `*`, unary `-` and `/` gives 0 and a math error.
//! - Operators cast Integer to Boolean as an error (`NOT 10`, as the test kit requires);
//!   the explicit `BOOL(10)` is `true`.
//! - Inside a string literal `''` (or `""`) is an escaped quote, as in SQL, like `\'`.
//! - Calling an unknown function, or one with the wrong number of arguments, is a compile
//!   error ([`CompileErrorKind::MissingFunction`]) rather than an evaluation error.
//! - Nesting deeper than [`MAX_DEPTH`] levels is a compile error.
//!
//! # Layout
//! - `lexer`: text to tokens with character offsets.
//! - `parser`: tokens to the tree in `ast`, resolving functions and compiling LIKE
//!   patterns (`like`).
//! - `error`: compile errors; `value`: values and evaluation errors (below everything).
//! - `eval`: evaluation and the type casts; `functions`: the built-in functions.

mod ast;
mod error;
mod eval;
mod functions;
mod lexer;
mod like;
mod parser;
mod value;

use crate::event::Event;

pub use error::{CompileError, CompileErrorKind};
pub use parser::MAX_DEPTH;
pub use value::{EvalError, Value};

/// A compiled CESQL expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    root: ast::Expr,
}

impl Expression {
    /// Parses and checks `source`.
    pub fn compile(source: &str) -> Result<Expression, CompileError> {
        Ok(Expression {
            root: parser::parse(source)?,
        })
    }

    /// Evaluates the expression: its value, and the first error if any occurred.
    pub fn evaluate<'a>(&'a self, event: &'a Event) -> Evaluation<'a> {
        match self.root.eval(event) {
            Ok(value) => Evaluation { value, error: None },
            Err(failure) => Evaluation {
                value: failure.value,
                error: Some(failure.error),
            },
        }
    }

    /// Whether the event passes the expression as a filter: it evaluated to `true` with
    /// no error.
    pub fn matches(&self, event: &Event) -> bool {
        matches!(self.root.eval(event), Ok(Value::Boolean(true)))
    }
}

/// The outcome of evaluating an expression. Like every CESQL evaluation it always has a
/// value, even when an error occurred (then usually the zero value of the expression's
/// type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation<'a> {
    /// The value.
    pub value: Value<'a>,
    /// The first error, if any.
    pub error: Option<EvalError>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AttributeValue;

    #[test]
    fn matches_only_a_true_boolean_without_error() {
        let mut event = Event::new("1", "/src", "com.example.created").unwrap();
        event
            .set_extension("priority", AttributeValue::Integer(5))
            .unwrap();
        let matches = |source: &str| Expression::compile(source).unwrap().matches(&event);
        assert!(matches("type LIKE 'com.example.%' AND INT(priority) > 3"));
        assert!(!matches("type LIKE 'com.example.%' AND INT(priority) > 5"));
        // Non-boolean results never match.
        assert!(!matches("priority"));
        assert!(!matches("'true'"));
        // Errors never match, even when the value is true.
        assert!(!matches("NOT 10"));
        assert!(!matches("missing = 1 OR TRUE AND missing"));
        assert!(!matches("NOT (missing = 1)"));
        assert!(matches("NOT EXISTS missing"));
    }

    #[test]
    fn compile_error_display_names_the_position() {
        let error = Expression::compile("type = ").unwrap_err();
        assert_eq!(
            error.to_string(),
            "at position 7: expected an expression, found the end of the expression"
        );
    }
}
