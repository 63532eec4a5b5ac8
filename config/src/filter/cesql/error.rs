//! Why an expression does not compile: what the lexer and the parser report.

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
