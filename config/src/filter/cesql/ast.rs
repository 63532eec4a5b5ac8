//! The compiled form of a CESQL expression: a tree the evaluator walks.
//!
//! Chains of `AND`, `OR` and `XOR` are one node with many operands (the grammar makes them
//! right-associative at one precedence level), so a long `a OR b OR c …` list stays flat.
//! Everything that can be decided when the trigger is loaded is: function names are
//! resolved to [`Function`]s, LIKE patterns are compiled, literals are typed.

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

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    /// `LENGTH(x)`: the number of characters.
    Length,
    /// `CONCAT(x1, …)`.
    Concat,
    /// `CONCAT_WS(delimiter, x1, …)`.
    ConcatWs,
    /// `LOWER(x)`.
    Lower,
    /// `UPPER(x)`.
    Upper,
    /// `TRIM(x)`: without leading and trailing Unicode whitespace.
    Trim,
    /// `LEFT(x, n)`: the first `n` characters.
    Left,
    /// `RIGHT(x, n)`: the last `n` characters.
    Right,
    /// `SUBSTRING(x, pos)` and `SUBSTRING(x, pos, len)`.
    Substring,
    /// `ABS(x)`.
    Abs,
    /// `INT(x)`: the explicit cast to Integer.
    Int,
    /// `BOOL(x)`: the explicit cast to Boolean.
    Bool,
    /// `STRING(x)`: the explicit cast to String.
    String,
    /// `IS_INT(x)`: whether `INT(x)` succeeds.
    IsInt,
    /// `IS_BOOL(x)`: whether `BOOL(x)` succeeds.
    IsBool,
}

const ALL: [(&str, Function); 15] = [
    ("LENGTH", Function::Length),
    ("CONCAT", Function::Concat),
    ("CONCAT_WS", Function::ConcatWs),
    ("LOWER", Function::Lower),
    ("UPPER", Function::Upper),
    ("TRIM", Function::Trim),
    ("LEFT", Function::Left),
    ("RIGHT", Function::Right),
    ("SUBSTRING", Function::Substring),
    ("ABS", Function::Abs),
    ("INT", Function::Int),
    ("BOOL", Function::Bool),
    ("STRING", Function::String),
    ("IS_INT", Function::IsInt),
    ("IS_BOOL", Function::IsBool),
];

impl Function {
    /// Finds the function `name` (any case) taking `arity` arguments; the error says why
    /// there is none.
    pub(crate) fn resolve(name: &str, arity: usize) -> Result<Function, String> {
        let Some(&(canonical, function)) = ALL
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
        else {
            return Err(format!(
                "unknown function {name}; the built-in functions are {}",
                ALL.map(|(n, _)| n).join(", ")
            ));
        };
        let (min, max) = function.arity();
        if arity < min || max.is_some_and(|max| arity > max) {
            let takes = match max {
                Some(max) if max == min => format!("{min} argument{}", plural(min)),
                Some(max) => format!("{min} to {max} arguments"),
                None => format!("at least {min} argument{}", plural(min)),
            };
            return Err(format!("{canonical} takes {takes}, not {arity}"));
        }
        Ok(function)
    }

    /// The fewest and most arguments (`None`: any number).
    fn arity(self) -> (usize, Option<usize>) {
        match self {
            Function::Concat => (0, None),
            Function::ConcatWs => (1, None),
            Function::Left | Function::Right => (2, Some(2)),
            Function::Substring => (2, Some(3)),
            Function::Length
            | Function::Lower
            | Function::Upper
            | Function::Trim
            | Function::Abs
            | Function::Int
            | Function::Bool
            | Function::String
            | Function::IsInt
            | Function::IsBool => (1, Some(1)),
        }
    }

    /// The type of the result.
    pub(crate) fn result_type(self) -> Type {
        match self {
            Function::Length | Function::Abs | Function::Int => Type::Integer,
            Function::Bool | Function::IsInt | Function::IsBool => Type::Boolean,
            Function::Concat
            | Function::ConcatWs
            | Function::Lower
            | Function::Upper
            | Function::Trim
            | Function::Left
            | Function::Right
            | Function::Substring
            | Function::String => Type::String,
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
