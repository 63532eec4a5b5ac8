//! The compiled form of a CESQL expression: a tree the evaluator walks.
//!
//! Chains of `AND`, `OR` and `XOR` are one node with many operands (the grammar makes them
//! right-associative at one precedence level), so a long `a OR b OR c …` list stays flat.
//! Everything that can be decided when the trigger is loaded is: function names are
//! resolved to [`Function`]s, LIKE patterns are compiled, literals are typed.

use super::functions::Function;
use super::like::LikePattern;

/// The types of CESQL values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Type {
    /// `true` / `false`.
    Boolean,
    /// A 32-bit signed integer.
    Integer,
    /// A sequence of Unicode characters.
    String,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Literal {
    Boolean(bool),
    Integer(i32),
    String(Box<str>),
}

/// `*`, `/`, `%`, `+`, `-`: Integer x Integer -> Integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArithmeticOp {
    Multiply,
    Divide,
    Modulo,
    Add,
    Subtract,
}

/// `=`, `!=` / `<>`, `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ComparisonOp {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// `AND`, `OR`, `XOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LogicOp {
    And,
    Or,
    Xor,
}

/// A node of the expression tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    /// A literal.
    Literal(Literal),
    /// An attribute by its (lower-cased) name.
    Attribute(Box<str>),
    /// `EXISTS name`.
    Exists(Box<str>),
    /// `NOT x`.
    Not(Box<Expr>),
    /// `-x`.
    Negate(Box<Expr>),
    /// `x op y` for an arithmetic operator.
    Arithmetic {
        op: ArithmeticOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `x op y` for a comparison operator.
    Comparison {
        op: ComparisonOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `x0 op x1 op … xn` for one logic operator, meaning `x0 op (x1 op (… xn))`; at least
    /// two operands.
    Logic { op: LogicOp, operands: Vec<Expr> },
    /// `x [NOT] LIKE 'pattern'`.
    Like {
        value: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    /// `x [NOT] IN (y1, y2, …)`; the set is never empty.
    In {
        value: Box<Expr>,
        set: Vec<Expr>,
        negated: bool,
    },
    /// A built-in function call; the arity was checked at compile time.
    Call { function: Function, args: Vec<Expr> },
}
