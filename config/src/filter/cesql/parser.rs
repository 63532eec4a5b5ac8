//! A recursive-descent parser for CESQL v1, following the grammar of the CloudEvents
//! specification's `CESQLParser.g4` (the grammar every CloudEvents SDK, and so Knative,
//! is generated from).
//!
//! Precedence, tightest first:
//! 1. function calls, literals, attributes, `EXISTS x`, `( … )`
//! 2. prefix `NOT` and `-` (their operand is another prefix or primary expression, so
//!    `NOT a = b` is `(NOT a) = b`)
//! 3. postfix `[NOT] LIKE 'pattern'` and `[NOT] IN (…)`
//! 4. `*` `/` `%`, then `+` `-`, then the comparisons (all left-associative)
//! 5. `AND`, `OR`, `XOR`: one precedence level, right-associative, so
//!    `a AND b OR c` is `a AND (b OR c)`, as in the specification's grammar
//!
//! Keywords and function names are case-insensitive; attribute names are lower-cased.
//! Nesting is limited to [`MAX_DEPTH`] levels, both for the parser's own recursion and for
//! the depth of the tree it builds, so no input can overflow the stack while parsing,
//! evaluating or dropping an expression.

use super::ast::{ArithmeticOp, ComparisonOp, Expr, Function, Literal, LogicOp};
use super::error::{CompileError, CompileErrorKind};
use super::lexer::{Token, TokenKind, tokenize};
use super::like::LikePattern;

/// How deeply expressions may nest (parentheses, operators, function calls).
pub const MAX_DEPTH: usize = 64;

const KEYWORDS: [&str; 9] = [
    "AND", "OR", "XOR", "NOT", "LIKE", "IN", "EXISTS", "TRUE", "FALSE",
];

/// Parses a whole expression.
pub(super) fn parse(source: &str) -> Result<Expr, CompileError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        nesting: 0,
    };
    let root = parser.logic()?;
    let rest = parser.peek();
    if rest.kind != TokenKind::End {
        return Err(syntax(
            rest.position,
            format!(
                "unexpected {} after a complete expression; join expressions with AND, OR or XOR",
                rest.kind.describe()
            ),
        ));
    }
    Ok(root.expr)
}

/// A parsed subtree and its depth.
struct Node {
    expr: Expr,
    depth: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Self {
        Node { expr, depth: 1 }
    }
}

/// An operator of one of the left-associative binary levels.
enum Binary {
    Arithmetic(ArithmeticOp),
    Comparison(ComparisonOp),
}

struct Parser<'s> {
    tokens: Vec<Token<'s>>,
    at: usize,
    /// Current recursion depth through parentheses, prefix operators, calls and sets.
    nesting: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> &Token<'s> {
        self.peek_at(0)
    }

    /// The token `k` places ahead; the final `End` token when that is past the end.
    fn peek_at(&self, k: usize) -> &Token<'s> {
        // tokenize always ends the list with End, so the list is never empty.
        let last = self.tokens.len() - 1;
        &self.tokens[(self.at + k).min(last)]
    }

    /// Consumes the current token and returns its position.
    fn advance(&mut self) -> usize {
        let position = self.peek().position;
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        position
    }

    /// Whether the token `k` places ahead is the keyword `keyword`.
    fn keyword(&self, k: usize, keyword: &str) -> bool {
        matches!(&self.peek_at(k).kind, TokenKind::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn enter(&mut self, position: usize) -> Result<(), CompileError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(too_deep(position));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Builds a node above children whose deepest is `child_depth`.
    fn node(&self, expr: Expr, child_depth: usize, position: usize) -> Result<Node, CompileError> {
        let depth = child_depth + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(position));
        }
        Ok(Node { expr, depth })
    }

    fn expected(&self, what: &str) -> CompileError {
        let found = self.peek();
        syntax(
            found.position,
            format!("expected {what}, found {}", found.kind.describe()),
        )
    }

    /// `x (AND|OR|XOR) y …`, right-associative; runs of one operator become one node.
    fn logic(&mut self) -> Result<Node, CompileError> {
        let mut operands = vec![self.comparison()?];
        let mut ops = Vec::new();
        while let Some(op) = self.logic_op() {
            let position = self.advance();
            ops.push((op, position));
            operands.push(self.comparison()?);
        }
        // operands holds one more element than ops, so it is never empty here.
        let last = operands
            .pop()
            .ok_or_else(|| self.expected("an expression"))?;
        let Some(&(mut current, mut position)) = ops.last() else {
            return Ok(last);
        };
        // Operands of the innermost group, in reverse order.
        let mut group = vec![last];
        for (&(op, op_position), left) in ops.iter().zip(operands).rev() {
            if op != current {
                let inner = self.logic_node(current, group, position)?;
                group = vec![inner];
                current = op;
            }
            position = op_position;
            group.push(left);
        }
        self.logic_node(current, group, position)
    }

    fn logic_op(&self) -> Option<LogicOp> {
        [
            ("AND", LogicOp::And),
            ("OR", LogicOp::Or),
            ("XOR", LogicOp::Xor),
        ]
        .into_iter()
        .find_map(|(word, op)| self.keyword(0, word).then_some(op))
    }

    fn logic_node(
        &self,
        op: LogicOp,
        mut reversed: Vec<Node>,
        position: usize,
    ) -> Result<Node, CompileError> {
        reversed.reverse();
        let depth = reversed.iter().map(|n| n.depth).max().unwrap_or(0);
        let operands = reversed.into_iter().map(|n| n.expr).collect();
        self.node(Expr::Logic { op, operands }, depth, position)
    }

    fn comparison(&mut self) -> Result<Node, CompileError> {
        self.left_associative(Self::additive, |kind| {
            let op = match kind {
                TokenKind::Equal => ComparisonOp::Equal,
                TokenKind::NotEqual | TokenKind::LessGreater => ComparisonOp::NotEqual,
                TokenKind::Less => ComparisonOp::Less,
                TokenKind::LessOrEqual => ComparisonOp::LessOrEqual,
                TokenKind::Greater => ComparisonOp::Greater,
                TokenKind::GreaterOrEqual => ComparisonOp::GreaterOrEqual,
                _ => return None,
            };
            Some(Binary::Comparison(op))
        })
    }

    fn additive(&mut self) -> Result<Node, CompileError> {
        self.left_associative(Self::multiplicative, |kind| match kind {
            TokenKind::Plus => Some(Binary::Arithmetic(ArithmeticOp::Add)),
            TokenKind::Minus => Some(Binary::Arithmetic(ArithmeticOp::Subtract)),
            _ => None,
        })
    }

    fn multiplicative(&mut self) -> Result<Node, CompileError> {
        self.left_associative(Self::postfix, |kind| match kind {
            TokenKind::Star => Some(Binary::Arithmetic(ArithmeticOp::Multiply)),
            TokenKind::Slash => Some(Binary::Arithmetic(ArithmeticOp::Divide)),
            TokenKind::Percent => Some(Binary::Arithmetic(ArithmeticOp::Modulo)),
            _ => None,
        })
    }

    /// `operand (op operand)*`, folded to the left.
    fn left_associative(
        &mut self,
        operand: fn(&mut Self) -> Result<Node, CompileError>,
        op_of: fn(&TokenKind<'_>) -> Option<Binary>,
    ) -> Result<Node, CompileError> {
        let mut left = operand(self)?;
        while let Some(op) = op_of(&self.peek().kind) {
            let position = self.advance();
            let right = operand(self)?;
            let depth = left.depth.max(right.depth);
            let (left_expr, right_expr) = (Box::new(left.expr), Box::new(right.expr));
            let expr = match op {
                Binary::Arithmetic(op) => Expr::Arithmetic {
                    op,
                    left: left_expr,
                    right: right_expr,
                },
                Binary::Comparison(op) => Expr::Comparison {
                    op,
                    left: left_expr,
                    right: right_expr,
                },
            };
            left = self.node(expr, depth, position)?;
        }
        Ok(left)
    }

    /// A prefix expression followed by any number of `[NOT] LIKE` / `[NOT] IN`.
    fn postfix(&mut self) -> Result<Node, CompileError> {
        let mut value = self.prefix()?;
        loop {
            let negated =
                self.keyword(0, "NOT") && (self.keyword(1, "LIKE") || self.keyword(1, "IN"));
            let k = usize::from(negated);
            if self.keyword(k, "LIKE") {
                let position = self.peek_at(k).position;
                self.at += k + 1;
                let TokenKind::String(pattern) = &self.peek().kind else {
                    return Err(self.expected("a string literal as the LIKE pattern"));
                };
                let pattern = LikePattern::new(pattern);
                self.advance();
                let expr = Expr::Like {
                    value: Box::new(value.expr),
                    pattern,
                    negated,
                };
                value = self.node(expr, value.depth, position)?;
            } else if self.keyword(k, "IN") {
                let position = self.peek_at(k).position;
                self.at += k + 1;
                if self.peek().kind != TokenKind::LeftParen {
                    return Err(self.expected("'(' to start the IN set"));
                }
                self.advance();
                let (set, set_depth) = self.list(position, "the IN set", false)?;
                let expr = Expr::In {
                    value: Box::new(value.expr),
                    set,
                    negated,
                };
                value = self.node(expr, value.depth.max(set_depth), position)?;
            } else {
                return Ok(value);
            }
        }
    }

    /// A comma-separated list of expressions up to and including `)`, the `(` already
    /// consumed; `opened_at` is where the construct started, `allow_empty` whether `()` is
    /// valid. Returns the expressions and the depth of the deepest.
    fn list(
        &mut self,
        opened_at: usize,
        what: &str,
        allow_empty: bool,
    ) -> Result<(Vec<Expr>, usize), CompileError> {
        self.enter(opened_at)?;
        let mut items = Vec::new();
        let mut depth = 0;
        if allow_empty && self.peek().kind == TokenKind::RightParen {
            self.advance();
            self.leave();
            return Ok((items, depth));
        }
        loop {
            let item = self.logic()?;
            depth = depth.max(item.depth);
            items.push(item.expr);
            match self.peek().kind {
                TokenKind::Comma => {
                    self.advance();
                }
                TokenKind::RightParen => {
                    self.advance();
                    break;
                }
                _ => return Err(self.expected(&format!("',' or ')' in {what}"))),
            }
        }
        self.leave();
        Ok((items, depth))
    }

    /// `NOT x`, `-x`, a signed integer literal, or a primary expression.
    fn prefix(&mut self) -> Result<Node, CompileError> {
        let position = self.peek().position;
        if self.keyword(0, "NOT") {
            self.advance();
            self.enter(position)?;
            let operand = self.prefix()?;
            self.leave();
            return self.node(Expr::Not(Box::new(operand.expr)), operand.depth, position);
        }
        let sign = match self.peek().kind {
            TokenKind::Minus => Some(true),
            TokenKind::Plus => Some(false),
            _ => None,
        };
        if let Some(negative) = sign {
            if let TokenKind::Digits(digits) = self.peek_at(1).kind {
                self.at += 2;
                return integer(digits, negative, position).map(Node::leaf);
            }
            if negative {
                self.advance();
                self.enter(position)?;
                let operand = self.prefix()?;
                self.leave();
                return self.node(
                    Expr::Negate(Box::new(operand.expr)),
                    operand.depth,
                    position,
                );
            }
        }
        self.primary()
    }

    /// Literals, attributes, `EXISTS x`, function calls and parenthesised expressions.
    fn primary(&mut self) -> Result<Node, CompileError> {
        let position = self.peek().position;
        match &self.peek().kind {
            TokenKind::LeftParen => {
                self.advance();
                self.enter(position)?;
                let inner = self.logic()?;
                if self.peek().kind != TokenKind::RightParen {
                    return Err(
                        self.expected(&format!("')' to close the '(' at position {position}"))
                    );
                }
                self.advance();
                self.leave();
                Ok(inner)
            }
            TokenKind::String(s) => {
                let literal = Literal::String(s.as_str().into());
                self.advance();
                Ok(Node::leaf(Expr::Literal(literal)))
            }
            &TokenKind::Digits(digits) => {
                self.advance();
                integer(digits, false, position).map(Node::leaf)
            }
            &TokenKind::Word(word) => self.word(word, position),
            _ => Err(self.expected("an expression")),
        }
    }

    fn word(&mut self, word: &'s str, position: usize) -> Result<Node, CompileError> {
        if word.eq_ignore_ascii_case("TRUE") || word.eq_ignore_ascii_case("FALSE") {
            self.advance();
            let value = word.eq_ignore_ascii_case("TRUE");
            return Ok(Node::leaf(Expr::Literal(Literal::Boolean(value))));
        }
        if word.eq_ignore_ascii_case("EXISTS") {
            self.advance();
            let name = match self.peek().kind {
                TokenKind::Word(name) => attribute_name(name, self.peek().position)?,
                _ => return Err(self.expected("an attribute name after EXISTS")),
            };
            self.advance();
            return Ok(Node::leaf(Expr::Exists(name)));
        }
        if self.peek_at(1).kind == TokenKind::LeftParen {
            return self.call(word, position);
        }
        if is_keyword(word) {
            return Err(syntax(
                position,
                format!(
                    "expected an expression, found the keyword {}",
                    word.to_ascii_uppercase()
                ),
            ));
        }
        let name = attribute_name(word, position)?;
        self.advance();
        Ok(Node::leaf(Expr::Attribute(name)))
    }

    /// `NAME( args )`, the name at the current token.
    fn call(&mut self, name: &'s str, position: usize) -> Result<Node, CompileError> {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid || is_keyword(name) {
            return Err(syntax(
                position,
                format!("{name:?} is not a function name; function names are letters and '_'"),
            ));
        }
        self.at += 2;
        let (args, depth) = self.list(position, "the argument list", true)?;
        let function = Function::resolve(name, args.len()).map_err(|message| CompileError {
            kind: CompileErrorKind::MissingFunction,
            position,
            message,
        })?;
        self.node(Expr::Call { function, args }, depth, position)
    }
}

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// An attribute name: letters and digits (CloudEvents attribute names), lower-cased.
fn attribute_name(word: &str, position: usize) -> Result<Box<str>, CompileError> {
    if is_keyword(word) {
        return Err(syntax(
            position,
            format!(
                "expected an attribute name, found the keyword {}",
                word.to_ascii_uppercase()
            ),
        ));
    }
    if !word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(syntax(
            position,
            format!("{word:?} is not an attribute name; attribute names are letters and digits"),
        ));
    }
    Ok(word.to_ascii_lowercase().into())
}

/// An integer literal from its digits and sign; it must fit 32 bits.
fn integer(digits: &str, negative: bool, position: usize) -> Result<Expr, CompileError> {
    let value = digits
        .parse::<i64>()
        .ok()
        .map(|v| if negative { -v } else { v })
        .and_then(|v| i32::try_from(v).ok());
    match value {
        Some(v) => Ok(Expr::Literal(Literal::Integer(v))),
        None => Err(syntax(
            position,
            format!(
                "integer {}{digits} is out of range; integers are 32-bit, \
                 from -2147483648 to 2147483647",
                if negative { "-" } else { "" }
            ),
        )),
    }
}

fn too_deep(position: usize) -> CompileError {
    syntax(
        position,
        format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
    )
}

fn syntax(position: usize, message: String) -> CompileError {
    CompileError {
        kind: CompileErrorKind::Syntax,
        position,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(source: &str) -> Expr {
        parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}"))
    }

    fn error(source: &str) -> CompileError {
        parse(source).expect_err(source)
    }

    fn attr(name: &str) -> Expr {
        Expr::Attribute(name.into())
    }

    fn int(v: i32) -> Expr {
        Expr::Literal(Literal::Integer(v))
    }

    #[test]
    fn logic_operators_share_one_level_and_associate_to_the_right() {
        let expected = Expr::Logic {
            op: LogicOp::And,
            operands: vec![
                attr("a"),
                attr("b"),
                Expr::Logic {
                    op: LogicOp::Or,
                    operands: vec![attr("c"), attr("d")],
                },
            ],
        };
        assert_eq!(parsed("a AND b and c OR d"), expected);
        assert_eq!(parsed("a AND b AND (c OR d)"), expected);
    }

    #[test]
    fn arithmetic_is_left_associative_with_the_usual_precedence() {
        // 8 - 2 - 1 = (8 - 2) - 1
        let Expr::Arithmetic { op, left, right } = parsed("8 - 2 - 1") else {
            panic!("not arithmetic");
        };
        assert_eq!(op, ArithmeticOp::Subtract);
        assert_eq!(*right, int(1));
        assert!(matches!(
            *left,
            Expr::Arithmetic {
                op: ArithmeticOp::Subtract,
                ..
            }
        ));
        // 1 + 2 * 3 = 1 + (2 * 3)
        let Expr::Arithmetic { op, right, .. } = parsed("1 + 2 * 3") else {
            panic!("not arithmetic");
        };
        assert_eq!(op, ArithmeticOp::Add);
        assert!(matches!(
            *right,
            Expr::Arithmetic {
                op: ArithmeticOp::Multiply,
                ..
            }
        ));
    }

    #[test]
    fn prefix_operators_bind_tighter_than_everything_else() {
        assert_eq!(
            parsed("NOT a = b"),
            Expr::Comparison {
                op: ComparisonOp::Equal,
                left: Box::new(Expr::Not(Box::new(attr("a")))),
                right: Box::new(attr("b")),
            }
        );
        assert_eq!(
            parsed("NOT EXISTS a"),
            Expr::Not(Box::new(Expr::Exists("a".into())))
        );
    }

    #[test]
    fn signs_fold_into_integer_literals() {
        assert_eq!(parsed("-2147483648"), int(i32::MIN));
        assert_eq!(parsed("+7"), int(7));
        assert_eq!(parsed("--10"), Expr::Negate(Box::new(int(-10))));
        assert!(matches!(
            parsed("4 -1"),
            Expr::Arithmetic {
                op: ArithmeticOp::Subtract,
                ..
            }
        ));
        assert_eq!(parsed("-x"), Expr::Negate(Box::new(attr("x"))));
        assert_eq!(error("2147483648").position, 0);
        assert_eq!(error("1 + -2147483649").position, 4);
    }

    #[test]
    fn postfix_like_and_in() {
        let Expr::Like { negated, .. } = parsed("subject NOT LIKE 'a%'") else {
            panic!("not LIKE");
        };
        assert!(negated);
        let Expr::In { set, negated, .. } = parsed("x not in (1, 'a', y)") else {
            panic!("not IN");
        };
        assert!(negated);
        assert_eq!(set.len(), 3);
        // LIKE binds tighter than the binary operators.
        assert!(matches!(
            parsed("a * b LIKE 'x'"),
            Expr::Arithmetic {
                op: ArithmeticOp::Multiply,
                ..
            }
        ));
    }

    #[test]
    fn identifiers_are_lower_cased_and_keywords_case_insensitive() {
        assert_eq!(parsed("EXISTS SOURCE"), Expr::Exists("source".into()));
        assert_eq!(parsed("MyExt"), attr("myext"));
        assert_eq!(parsed("tRuE"), Expr::Literal(Literal::Boolean(true)));
        assert!(matches!(
            parsed("int(x)"),
            Expr::Call {
                function: Function::Int,
                ..
            }
        ));
    }

    #[test]
    fn syntax_errors_say_where_and_what() {
        let e = error("type = 'a' AND");
        assert_eq!(e.kind, CompileErrorKind::Syntax);
        assert_eq!(e.position, 14);
        assert_eq!(
            e.message,
            "expected an expression, found the end of the expression"
        );
        let e = error("x LIKE 123");
        assert_eq!(e.position, 7);
        assert!(
            e.message.contains("string literal as the LIKE pattern"),
            "{e}"
        );
        let e = error("(a = b");
        assert_eq!(e.position, 6);
        assert!(
            e.message.contains("')' to close the '(' at position 0"),
            "{e}"
        );
        let e = error("a b");
        assert_eq!(e.position, 2);
        assert!(e.message.starts_with("unexpected 'b'"), "{e}");
        assert_eq!(error("x IN ()").position, 6);
        assert_eq!(error("AND").position, 0);
        assert_eq!(error("EXISTS 'a'").position, 7);
        assert_eq!(error("my_ext = 1").position, 0);
        assert_eq!(error("f1(x)").position, 0);
    }

    #[test]
    fn unknown_functions_and_wrong_arity_are_missing_functions() {
        let e = error("type = 'x' OR NOPE(1)");
        assert_eq!(e.kind, CompileErrorKind::MissingFunction);
        assert_eq!(e.position, 14);
        let e = error("LEFT('abc')");
        assert_eq!(e.kind, CompileErrorKind::MissingFunction);
        assert!(e.message.contains("LEFT takes 2 arguments"), "{e}");
    }

    #[test]
    fn nesting_is_limited() {
        let ok = format!(
            "{}1{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        parsed(&ok);
        for deep in [
            format!(
                "{}1{}",
                "(".repeat(MAX_DEPTH + 1),
                ")".repeat(MAX_DEPTH + 1)
            ),
            format!("{}TRUE", "NOT ".repeat(100_000)),
            format!("{}1", "-".repeat(100_000)),
            format!("1{}", " + 1".repeat(100_000)),
            format!("{}1{}", "ABS(".repeat(10_000), ")".repeat(10_000)),
            format!("{}1", "1 IN (".repeat(10_000)),
            "(".repeat(1_000_000),
        ] {
            let e = error(&deep);
            assert!(e.message.contains("nested too deeply"), "{e}");
        }
        // Long flat chains are not deep.
        let chain = vec!["a = 1"; 10_000].join(" OR ");
        assert!(matches!(
            parsed(&chain),
            Expr::Logic {
                op: LogicOp::Or,
                ..
            }
        ));
    }
}
