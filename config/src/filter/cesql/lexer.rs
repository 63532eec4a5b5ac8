//! Splits CESQL text into tokens, each with its character offset.
//!
//! Words (keywords, identifiers, function names) are kept as text and classified by the
//! parser, which knows the context: `abc` is an attribute, `abc(` a function call, `AND` a
//! keyword. Signs are never part of integer tokens; the parser folds `-` followed by an
//! integer into a negative literal, so `4 -1` and `4-1` both subtract.

use super::error::{CompileError, CompileErrorKind};

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind<'s> {
    /// `(`
    LeftParen,
    /// `)`
    RightParen,
    /// `,`
    Comma,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<>`
    LessGreater,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// A string literal, its escapes already resolved.
    String(String),
    /// A run of digits (an integer literal without its sign).
    Digits(&'s str),
    /// A run of letters, digits and underscores that is not all digits.
    Word(&'s str),
    /// The end of the input.
    End,
}

impl TokenKind<'_> {
    /// How the token reads in an error message.
    pub(super) fn describe(&self) -> String {
        match self {
            TokenKind::String(_) => "a string literal".to_owned(),
            TokenKind::Digits(d) => format!("integer {d}"),
            TokenKind::Word(w) => format!("'{w}'"),
            TokenKind::End => "the end of the expression".to_owned(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            TokenKind::LeftParen => "(",
            TokenKind::RightParen => ")",
            TokenKind::Comma => ",",
            TokenKind::Star => "*",
            TokenKind::Slash => "/",
            TokenKind::Percent => "%",
            TokenKind::Plus => "+",
            TokenKind::Minus => "-",
            TokenKind::Equal => "=",
            TokenKind::NotEqual => "!=",
            TokenKind::LessGreater => "<>",
            TokenKind::Less => "<",
            TokenKind::LessOrEqual => "<=",
            TokenKind::Greater => ">",
            TokenKind::GreaterOrEqual => ">=",
            TokenKind::String(_) | TokenKind::Digits(_) | TokenKind::Word(_) | TokenKind::End => "",
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token<'s> {
    pub(super) kind: TokenKind<'s>,
    /// Character offset of the token's first character (0-based).
    pub(super) position: usize,
}

/// Tokenizes the whole expression; the last token is always [`TokenKind::End`].
pub(super) fn tokenize(source: &str) -> Result<Vec<Token<'_>>, CompileError> {
    // (byte offset, char) for every character: the index is the character offset.
    let chars: Vec<(usize, char)> = source.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(source.len(), |&(b, _)| b);
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let start = i;
        let next = chars.get(i + 1).map(|&(_, c)| c);
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => TokenKind::LeftParen,
            ')' => TokenKind::RightParen,
            ',' => TokenKind::Comma,
            '*' => TokenKind::Star,
            '/' => TokenKind::Slash,
            '%' => TokenKind::Percent,
            '+' => TokenKind::Plus,
            '-' => TokenKind::Minus,
            '=' => TokenKind::Equal,
            '!' if next == Some('=') => {
                i += 1;
                TokenKind::NotEqual
            }
            '<' if next == Some('>') => {
                i += 1;
                TokenKind::LessGreater
            }
            '<' if next == Some('=') => {
                i += 1;
                TokenKind::LessOrEqual
            }
            '<' => TokenKind::Less,
            '>' if next == Some('=') => {
                i += 1;
                TokenKind::GreaterOrEqual
            }
            '>' => TokenKind::Greater,
            '\'' | '"' => {
                let (value, end) = string_literal(&chars, i)?;
                i = end;
                TokenKind::String(value)
            }
            c if is_word_char(c) => {
                while chars.get(i + 1).is_some_and(|&(_, c)| is_word_char(c)) {
                    i += 1;
                }
                let text = &source[byte_at(start)..byte_at(i + 1)];
                if text.bytes().all(|b| b.is_ascii_digit()) {
                    TokenKind::Digits(text)
                } else {
                    TokenKind::Word(text)
                }
            }
            '!' => {
                return Err(syntax(start, "expected '=' after '!'".to_owned()));
            }
            other => {
                return Err(syntax(start, format!("unexpected character {other:?}")));
            }
        };
        tokens.push(Token {
            kind,
            position: start,
        });
        i += 1;
    }
    tokens.push(Token {
        kind: TokenKind::End,
        position: chars.len(),
    });
    Ok(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Reads the string literal whose opening quote is at `open`; returns its value and the
/// index of the closing quote.
///
/// Inside `'…'`, `\'` and `''` stand for a quote; inside `"…"`, `\"` and `""` do. Any
/// other backslash is kept as it is, so `'a\%b'` is the four characters `a\%b` and a LIKE
/// pattern sees its escape.
fn string_literal(chars: &[(usize, char)], open: usize) -> Result<(String, usize), CompileError> {
    let quote = chars[open].1;
    let mut value = String::new();
    let mut i = open + 1;
    loop {
        let Some(&(_, c)) = chars.get(i) else {
            return Err(syntax(
                open,
                "unterminated string literal; close it with its opening quote".to_owned(),
            ));
        };
        let next = chars.get(i + 1).map(|&(_, c)| c);
        match c {
            '\\' => match next {
                Some(n) if n == quote => {
                    value.push(quote);
                    i += 2;
                }
                Some(n) => {
                    value.push('\\');
                    value.push(n);
                    i += 2;
                }
                None => i += 1,
            },
            c if c == quote && next == Some(quote) => {
                value.push(quote);
                i += 2;
            }
            c if c == quote => return Ok((value, i)),
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
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

    fn kinds(source: &str) -> Vec<TokenKind<'_>> {
        tokenize(source)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn operators_and_words() {
        assert_eq!(
            kinds("a<>b!=1 <= >=<>"),
            vec![
                TokenKind::Word("a"),
                TokenKind::LessGreater,
                TokenKind::Word("b"),
                TokenKind::NotEqual,
                TokenKind::Digits("1"),
                TokenKind::LessOrEqual,
                TokenKind::GreaterOrEqual,
                TokenKind::LessGreater,
                TokenKind::End,
            ]
        );
        assert_eq!(
            kinds("CONCAT_WS(x1,-2)"),
            vec![
                TokenKind::Word("CONCAT_WS"),
                TokenKind::LeftParen,
                TokenKind::Word("x1"),
                TokenKind::Comma,
                TokenKind::Minus,
                TokenKind::Digits("2"),
                TokenKind::RightParen,
                TokenKind::End,
            ]
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            kinds(r#"'a"b\'c' "a'b\"c" 'it''s' 'a\%b\\'"#),
            vec![
                TokenKind::String("a\"b'c".into()),
                TokenKind::String("a'b\"c".into()),
                TokenKind::String("it's".into()),
                TokenKind::String(r"a\%b\\".into()),
                TokenKind::End,
            ]
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let tokens = tokenize("'é€' = x").unwrap();
        assert_eq!(tokens[1].position, 5);
        assert_eq!(tokens[2].position, 7);
        assert_eq!(tokens[3].position, 8);
    }

    #[test]
    fn errors_point_at_the_offending_character() {
        let e = tokenize("a = 'open").unwrap_err();
        assert_eq!(e.position, 4);
        assert!(e.message.contains("unterminated"));
        let e = tokenize("a ! b").unwrap_err();
        assert_eq!(e.position, 2);
        let e = tokenize("a # b").unwrap_err();
        assert_eq!(
            (e.position, e.message.as_str()),
            (2, "unexpected character '#'")
        );
        let e = tokenize(r"'abc\'").unwrap_err();
        assert_eq!(e.position, 0);
    }
}
