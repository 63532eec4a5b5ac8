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
//! - `eval`: evaluation and the type casts; `functions`: the built-in functions.

mod ast;
mod eval;
mod functions;
mod lexer;
mod like;
mod parser;

use std::borrow::Cow;
use std::fmt;

use crate::event::Event;

pub use parser::MAX_DEPTH;

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

/// A CESQL value. Strings borrow from the event or the expression where they can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// A Boolean.
    Boolean(bool),
    /// A 32-bit signed Integer.
    Integer(i32),
    /// A String.
    String(Cow<'a, str>),
}

impl Value<'_> {
    /// The value with no borrows.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Boolean(b) => Value::Boolean(b),
            Value::Integer(i) => Value::Integer(i),
            Value::String(s) => Value::String(Cow::Owned(s.into_owned())),
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// An error raised while evaluating (the specification's evaluation error types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A math operation failed: division by zero, or a result outside 32 bits.
    #[error("math error (division by zero or integer overflow)")]
    Math,
    /// A value could not be cast to the type an operator or function needs.
    #[error("cast error")]
    Cast,
    /// The expression refers to an attribute the event does not have.
    #[error("missing attribute")]
    MissingAttribute,
    /// A function was called with arguments outside its domain (e.g. `LEFT(x, -1)`).
    #[error("function evaluation error")]
    FunctionEvaluation,
}

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct CompileError {
    /// What kind of problem it is.
    pub kind: CompileErrorKind,
    /// Where: the 0-based character offset in the expression.
    pub position: usize,
    /// What is wrong, and what would be valid.
    pub message: String,
}

/// The kinds of compile errors (the specification's parse and missing-function errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileErrorKind {
    /// The text is not a valid expression.
    Syntax,
    /// A function that does not exist, or does not take that many arguments.
    MissingFunction,
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
