//! What can be wrong with a manifest, said so that a user can fix it: the file, the document,
//! the object, the field, and what would be valid.
//!
//! Validation knows nothing of files and yields [`FieldError`]s; loading places them in a file
//! and document and turns them into [`Problem`]s.

use std::fmt;
use std::path::PathBuf;

/// One invalid field of an object, found by validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.delivery.retry` or `metadata.annotations[weft.dev/x]`;
    /// empty when the error is about the object as a whole.
    pub field: String,
    /// A lowercase phrase saying what is wrong and what would be valid.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field`. A URL quoted in the message is shown without its
    /// credentials ([`crate::redact`]): problems are logged and served by the admin API.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: shown(message.into()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// Where an object came from: a file and the document within it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as found under the loaded path.
    pub file: PathBuf,
    /// The YAML document within the file, counted from 1; 0 means the file as a whole.
    pub document: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.document == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{} (document {})", self.file.display(), self.document)
        }
    }
}

/// Something wrong in the manifests, with enough context to find and fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in.
    pub file: PathBuf,
    /// The YAML document within the file, counted from 1; 0 when it is about the whole file
    /// (unreadable, not UTF-8).
    pub document: usize,
    /// The object, as `Kind namespace/name`, when one could be identified.
    pub object: Option<String>,
    /// The field's path, e.g. `spec.delivery.retry`, when the problem is in one field.
    pub field: Option<String>,
    /// A lowercase phrase saying what is wrong and what would be valid.
    pub message: String,
}

impl Problem {
    /// A problem with a whole document (or, with document 0, a whole file).
    pub fn new(source: &Location, message: impl Into<String>) -> Self {
        Problem {
            file: source.file.clone(),
            document: source.document,
            object: None,
            field: None,
            message: shown(message.into()),
        }
    }

    /// Names the object the problem is about.
    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// Names the field the problem is in; an empty path names none.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    /// Places a validation error of `object` at `source`.
    pub fn from_field_error(source: &Location, object: &str, error: FieldError) -> Self {
        Problem::new(source, error.message)
            .with_object(object)
            .with_field(error.field)
    }
}

/// `message` with the credentials of any URL in it masked.
fn shown(message: String) -> String {
    match crate::redact::redact_urls_in(&message) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(redacted) => redacted,
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        match (self.document, &self.object) {
            (0, None) => {}
            (0, Some(object)) => write!(f, " ({object})")?,
            (document, None) => write!(f, " (document {document})")?,
            (document, Some(object)) => write!(f, " (document {document}, {object})")?,
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(document: usize) -> Location {
        Location {
            file: PathBuf::from("config/examples/triggers.yaml"),
            document,
        }
    }

    #[test]
    fn display_names_file_document_object_and_field() {
        let problem = Problem::from_field_error(
            &source(2),
            "Trigger default/orders",
            FieldError::new(
                "spec.delivery.backoffDelay",
                "\"2 seconds\" is not an ISO-8601 duration (e.g. PT0.5S)",
            ),
        );
        assert_eq!(
            problem.to_string(),
            "config/examples/triggers.yaml (document 2, Trigger default/orders): \
             spec.delivery.backoffDelay: \"2 seconds\" is not an ISO-8601 duration (e.g. PT0.5S)"
        );
    }

    #[test]
    fn credentials_in_a_quoted_url_are_not_shown() {
        let error = FieldError::new(
            "spec.subscriber.uri",
            "\"ftp://me:hunter2@sink/?token=abc\" has scheme ftp; use an http or https URL",
        );
        let problem = Problem::from_field_error(&source(1), "Trigger default/t", error);
        let text = problem.to_string();
        assert!(text.contains("\"ftp://me:***@sink/?token=***\""), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("abc"), "{text}");
    }

    #[test]
    fn display_leaves_out_what_is_unknown() {
        let whole_file = Problem::new(&source(0), "is not valid UTF-8 text");
        assert_eq!(
            whole_file.to_string(),
            "config/examples/triggers.yaml: is not valid UTF-8 text"
        );
        let document = Problem::new(&source(3), "kind is missing");
        assert_eq!(
            document.to_string(),
            "config/examples/triggers.yaml (document 3): kind is missing"
        );
        let no_field = Problem::from_field_error(
            &source(1),
            "Broker default/default",
            FieldError::new("", "whole object"),
        );
        assert_eq!(no_field.field, None);
        assert_eq!(
            source(4).to_string(),
            "config/examples/triggers.yaml (document 4)"
        );
    }
}
