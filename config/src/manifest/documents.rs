//! Splits a YAML stream into its documents, by line, before any parsing.
//!
//! Splitting first means a syntax error spoils only its own document, and every document keeps
//! its position in the file (its number, and the line it starts on) even when it is empty. YAML
//! forbids `---` and `...` at the start of a line inside a document, so a line that starts with
//! either marker, followed by a space or the end of the line, always separates documents.

/// One document of a YAML stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Document<'a> {
    /// Counted from 1, in the order the documents appear.
    pub(crate) number: usize,
    /// The number of lines in the file before this document's text starts.
    pub(crate) line_offset: usize,
    /// The document's text, including its `---` line if it has one.
    pub(crate) text: &'a str,
}

/// Whether `line` starts with the marker `---` or `...`.
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether `text` holds anything besides blank lines, comments and directives.
fn has_content(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with('#') && !line.starts_with('%')
    })
}

/// Splits `text` into documents. A document opened by `---` counts even when empty; text
/// before the first `---` (or after a `...`) counts only when it has content, and otherwise
/// joins the next document, so that leading comments and directives stay with it.
pub(crate) fn split(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    // The current document: where it starts (byte and line), and whether `---` opened it.
    let (mut start, mut start_line, mut explicit) = (0, 0, false);
    let mut offset = 0;
    let mut finish = |start: usize, end: usize, line: usize, explicit: bool| {
        let chunk = &text[start..end];
        if explicit || has_content(chunk) {
            documents.push(Document {
                number: documents.len() + 1,
                line_offset: line,
                text: chunk,
            });
            true
        } else {
            false
        }
    };
    for (line_number, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line, "---") {
            if finish(start, offset, start_line, explicit) {
                start = offset;
                start_line = line_number;
            }
            explicit = true;
        } else if is_marker(line, "...") {
            finish(start, offset, start_line, explicit);
            start = offset + line.len();
            start_line = line_number + 1;
            explicit = false;
        }
        offset += line.len();
    }
    finish(start, text.len(), start_line, explicit);
    documents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> Vec<(usize, usize, &str)> {
        split(text)
            .into_iter()
            .map(|d| (d.number, d.line_offset, d.text))
            .collect()
    }

    #[test]
    fn single_document_without_markers() {
        assert_eq!(shape("a: 1\nb: 2\n"), [(1, 0, "a: 1\nb: 2\n")]);
    }

    #[test]
    fn leading_comments_join_the_first_document() {
        assert_eq!(
            shape("# header\n---\na: 1\n---\nb: 2\n"),
            [(1, 0, "# header\n---\na: 1\n"), (2, 3, "---\nb: 2\n")]
        );
    }

    #[test]
    fn content_before_the_first_marker_is_a_document() {
        assert_eq!(
            shape("a: 1\n---\nb: 2"),
            [(1, 0, "a: 1\n"), (2, 1, "---\nb: 2")]
        );
    }

    #[test]
    fn explicit_empty_documents_keep_their_number() {
        assert_eq!(
            shape("---\na: 1\n---\n---\nb: 2\n---\n"),
            [
                (1, 0, "---\na: 1\n"),
                (2, 2, "---\n"),
                (3, 3, "---\nb: 2\n"),
                (4, 5, "---\n")
            ]
        );
    }

    #[test]
    fn markers_need_a_space_or_line_end_after_them() {
        assert_eq!(
            shape("a: |\n  ---x\n----\n--- # c\nb: 1\n"),
            [(1, 0, "a: |\n  ---x\n----\n"), (2, 3, "--- # c\nb: 1\n")]
        );
    }

    #[test]
    fn document_end_markers_close_documents() {
        assert_eq!(shape("a: 1\n...\n# trailing\n"), [(1, 0, "a: 1\n")]);
        assert_eq!(
            shape("a: 1\n...\nb: 2\n"),
            [(1, 0, "a: 1\n"), (2, 2, "b: 2\n")]
        );
    }

    #[test]
    fn empty_text_has_no_documents() {
        assert!(split("").is_empty());
        assert!(split("# just a comment\n\n").is_empty());
        assert_eq!(
            shape("\r\n---\r\na: 1\r\n"),
            [(1, 0, "\r\n---\r\na: 1\r\n")]
        );
    }
}
