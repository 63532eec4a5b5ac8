//! LIKE patterns, compiled once: `%` matches any run of characters, `_` exactly one
//! character, `\%` and `\_` the literal characters; every other character (a lone `\`
//! included) matches itself, case-sensitively.
//!
//! The common shapes (`abc`, `abc%`, `%abc`, `%abc%`) become plain string comparisons;
//! anything else is matched by a greedy scan that backtracks only to the last `%`, so a
//! match costs at most O(pattern × text) and never recurses.

/// A compiled LIKE pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LikePattern(Shape);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// No wildcards.
    Exact(Box<str>),
    /// `abc%`.
    Prefix(Box<str>),
    /// `%abc`.
    Suffix(Box<str>),
    /// `%abc%`.
    Contains(Box<str>),
    /// `%`: any text.
    Anything,
    /// Anything else.
    General(Box<[Piece]>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Exactly this text.
    Literal(Box<str>),
    /// `_`: one character.
    One,
    /// `%`: any run of characters.
    Many,
}

impl LikePattern {
    /// Compiles a pattern (the value of its string literal).
    pub(crate) fn new(pattern: &str) -> Self {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some('%' | '_')) => {
                    // The peek just matched, so next() yields that character.
                    literal.extend(chars.next());
                }
                '%' | '_' => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
                    }
                    let piece = if c == '%' { Piece::Many } else { Piece::One };
                    // `%%` means the same as `%`.
                    if !(piece == Piece::Many && pieces.last() == Some(&Piece::Many)) {
                        pieces.push(piece);
                    }
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        LikePattern(shape(pieces))
    }

    /// Whether `text` matches the whole pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        match &self.0 {
            Shape::Exact(s) => text == &**s,
            Shape::Prefix(s) => text.starts_with(&**s),
            Shape::Suffix(s) => text.ends_with(&**s),
            Shape::Contains(s) => text.contains(&**s),
            Shape::Anything => true,
            Shape::General(pieces) => general_match(pieces, text),
        }
    }
}

fn shape(pieces: Vec<Piece>) -> Shape {
    use Piece::{Literal, Many};
    match pieces.as_slice() {
        [] => Shape::Exact("".into()),
        [Literal(s)] => Shape::Exact(s.clone()),
        [Literal(s), Many] => Shape::Prefix(s.clone()),
        [Many, Literal(s)] => Shape::Suffix(s.clone()),
        [Many, Literal(s), Many] => Shape::Contains(s.clone()),
        [Many] => Shape::Anything,
        _ => Shape::General(pieces.into_boxed_slice()),
    }
}

/// Matches `text` against pieces: advance greedily; on a mismatch, let the last `%` seen
/// swallow one more character and retry from just after it.
fn general_match(pieces: &[Piece], text: &str) -> bool {
    let (mut p, mut t) = (0, 0);
    // (piece after the last `%`, text offset that `%` currently extends to)
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        let advanced = match pieces.get(p) {
            Some(Piece::Many) => {
                backtrack = Some((p + 1, t));
                p += 1;
                true
            }
            Some(Piece::One) => match text[t..].chars().next() {
                Some(c) => {
                    t += c.len_utf8();
                    p += 1;
                    true
                }
                None => false,
            },
            Some(Piece::Literal(s)) => {
                if text[t..].starts_with(&**s) {
                    t += s.len();
                    p += 1;
                    true
                } else {
                    false
                }
            }
            None => {
                if t == text.len() {
                    return true;
                }
                false
            }
        };
        if advanced {
            continue;
        }
        match backtrack {
            Some((after, from)) => match text[from..].chars().next() {
                Some(c) => {
                    let from = from + c.len_utf8();
                    backtrack = Some((after, from));
                    p = after;
                    t = from;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        LikePattern::new(pattern).matches(text)
    }

    #[test]
    fn shapes_are_recognised() {
        assert_eq!(LikePattern::new("abc").0, Shape::Exact("abc".into()));
        assert_eq!(LikePattern::new("com.%").0, Shape::Prefix("com.".into()));
        assert_eq!(
            LikePattern::new("%.error").0,
            Shape::Suffix(".error".into())
        );
        assert_eq!(LikePattern::new("%mid%%").0, Shape::Contains("mid".into()));
        assert_eq!(LikePattern::new("%%").0, Shape::Anything);
        assert_eq!(LikePattern::new(r"a\%").0, Shape::Exact("a%".into()));
        assert!(matches!(LikePattern::new("a_c").0, Shape::General(_)));
    }

    #[test]
    fn wildcards() {
        assert!(like("abc", "a%b%c"));
        assert!(like("azzzbzzzc", "a%b%c"));
        assert!(!like("ab.cde", ".%.%."));
        assert!(like(".ab.cde.", ".%.%."));
        assert!(like("azbzc", "a_b_c"));
        assert!(!like("abzc", "a_b_c"));
        assert!(like("", "%"));
        assert!(like("", ""));
        assert!(!like("a", ""));
        assert!(like("aaa", "%a"));
        assert!(!like("aab", "%a"));
        assert!(like("mississippi", "%iss%ipp_"));
        assert!(!like("mississippi", "%iss%ipp__"));
        assert!(like("abab", "%ab"));
        assert!(like("xxabyab", "%ab_ab"));
    }

    #[test]
    fn underscore_matches_one_character_not_one_byte() {
        assert!(like("é", "_"));
        assert!(like("aé€b", "a__b"));
        assert!(!like("aé€b", "a_b"));
        assert!(like("aé€b", "a%b"));
    }

    #[test]
    fn escapes() {
        assert!(like("a%b", r"a\%b"));
        assert!(!like("axb", r"a\%b"));
        assert!(like("a_b", r"a\_b"));
        assert!(!like("axb", r"a\_b"));
        // A backslash before anything else is itself.
        assert!(like(r"ab\c", r"ab\c"));
        assert!(!like("abc", r"ab\c"));
        // `\\%`: a backslash, then an escaped percent.
        assert!(like(r"a\%", r"a\\%"));
        assert!(!like(r"a\xyz", r"a\\%"));
        // A trailing backslash is literal.
        assert!(like(r"a\", r"a\"));
    }

    #[test]
    fn long_inputs_do_not_explode() {
        let text = "a".repeat(5000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&text, &pattern));
    }
}
