//! The `sqlite://PATH[?synchronous=full|normal]` URL: the file it names and how often
//! it syncs.

use std::path::PathBuf;

use sqlx::sqlite::SqliteSynchronous;

use crate::ChannelError;

/// The database file a `sqlite://PATH[?synchronous=full|normal]` URL names.
pub fn database_file(url: &str) -> Result<PathBuf, ChannelError> {
    parse_url(url).map(|parsed| parsed.path)
}

/// What a `sqlite://PATH[?synchronous=full|normal]` URL names.
pub(super) struct SqliteUrl {
    pub(super) path: PathBuf,
    pub(super) synchronous: SqliteSynchronous,
}

/// Parses a `sqlite://PATH[?synchronous=full|normal]` URL.
pub(super) fn parse_url(url: &str) -> Result<SqliteUrl, ChannelError> {
    let invalid = |reason| ChannelError::InvalidUrl {
        url: crate::redact(url),
        reason,
    };
    let (location, query) = url.split_once('?').unwrap_or((url, ""));
    let path = path_of(location).map_err(|e| match e {
        ChannelError::InvalidUrl { reason, .. } => invalid(reason),
        other => other,
    })?;
    let mut synchronous = SqliteSynchronous::Full;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        synchronous = match pair {
            "synchronous=full" => SqliteSynchronous::Full,
            "synchronous=normal" => SqliteSynchronous::Normal,
            _ => {
                return Err(invalid(
                    "the only option is synchronous=full or synchronous=normal",
                ));
            }
        };
    }
    Ok(SqliteUrl { path, synchronous })
}

/// The file a `sqlite://PATH` URL names.
fn path_of(url: &str) -> Result<PathBuf, ChannelError> {
    let invalid = |reason| ChannelError::InvalidUrl {
        url: crate::redact(url),
        reason,
    };
    let path = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| ChannelError::UnsupportedUrl {
            url: crate::redact(url),
        })?;
    if path.is_empty() {
        return Err(invalid("the file path is empty"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("query strings and fragments are not supported"));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            path_of("sqlite:///a/b.db").unwrap(),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(path_of("sqlite://b/c.db").unwrap(), PathBuf::from("b/c.db"));
        for bad in [
            "sqlite://",
            "sqlite://x.db?mode=ro",
            "sqlite://x.db?synchronous=off",
        ] {
            assert!(
                matches!(parse_url(bad), Err(ChannelError::InvalidUrl { .. })),
                "{bad}"
            );
        }
        let normal = parse_url("sqlite://x.db?synchronous=normal").unwrap();
        assert_eq!(normal.path, PathBuf::from("x.db"));
        assert!(matches!(normal.synchronous, SqliteSynchronous::Normal));
        assert!(matches!(
            parse_url("sqlite://x.db").unwrap().synchronous,
            SqliteSynchronous::Full
        ));
        assert!(matches!(
            path_of("postgres://x"),
            Err(ChannelError::UnsupportedUrl { .. })
        ));
    }
}
