//! CESQL values and the errors of evaluating them: what the evaluator and the built-in
//! functions produce, below both.

use std::borrow::Cow;
use std::fmt;

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
