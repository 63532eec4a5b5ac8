//! The string form of attribute values, produced without allocating.
//!
//! Filters compare integer and boolean attributes by their canonical text (`5`, `-12`,
//! `true`). An `i32` has at most 11 characters, so its text is formatted into a buffer on
//! the stack instead of a `String`.

use std::ops::Deref;

use crate::event::AttributeRef;

/// The canonical text of a value: borrowed when it already is text, formatted on the
/// stack when it is an integer.
pub(crate) enum Text<'a> {
    /// A string value, or the text of a boolean.
    Borrowed(&'a str),
    /// The decimal text of an integer.
    Integer(IntText),
}

impl<'a> Text<'a> {
    /// The text of an attribute value: strings as they are, integers in base 10 without
    /// leading zeros, booleans as `true` / `false`.
    pub(crate) fn of_attribute(value: AttributeRef<'a>) -> Self {
        match value {
            AttributeRef::String(s) => Text::Borrowed(s),
            AttributeRef::Integer(i) => Text::Integer(IntText::new(i)),
            AttributeRef::Boolean(b) => Text::Borrowed(bool_text(b)),
        }
    }
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Integer(i) => i.as_str(),
        }
    }
}

/// `true` or `false`.
pub(crate) fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// The decimal text of an `i32`, formatted into a fixed buffer.
#[derive(Clone, Copy)]
pub(crate) struct IntText {
    /// Digits are written from the end; `start` is the first used byte.
    buf: [u8; 11],
    start: usize,
}

impl IntText {
    /// Formats `value` in base 10, with a leading `-` when negative.
    pub(crate) fn new(value: i32) -> Self {
        let mut buf = [0u8; 11];
        let mut start = buf.len();
        // unsigned_abs handles i32::MIN, whose absolute value does not fit an i32.
        let mut rest = value.unsigned_abs();
        loop {
            start -= 1;
            // `rest % 10` is a single digit, so the cast cannot truncate.
            buf[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if value < 0 {
            start -= 1;
            buf[start] = b'-';
        }
        IntText { buf, start }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and '-' are ever written, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_format_like_display() {
        for value in [0, 1, -1, 9, 10, -10, 12345, i32::MAX, i32::MIN, -2147483647] {
            assert_eq!(IntText::new(value).as_str(), value.to_string());
        }
    }

    #[test]
    fn attribute_text_is_the_canonical_string_form() {
        assert_eq!(&*Text::of_attribute(AttributeRef::String("x")), "x");
        assert_eq!(&*Text::of_attribute(AttributeRef::Integer(-7)), "-7");
        assert_eq!(&*Text::of_attribute(AttributeRef::Boolean(true)), "true");
        assert_eq!(&*Text::of_attribute(AttributeRef::Boolean(false)), "false");
    }
}
