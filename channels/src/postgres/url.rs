//! The `postgres://` URL: what sqlx connects with, and Weft's own parameters (`lease`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::ChannelError;

/// How long a lease outlives its last renewal unless the URL says otherwise.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A `postgres://` URL split into what sqlx connects with and Weft's own settings.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) connect: PgConnectOptions,
    /// How long a consumer's claim outlives its last renewal (`lease=PT30S`).
    pub(super) lease: Duration,
}

/// Parses a `postgres://` or `postgresql://` URL, taking Weft's parameters out of it.
pub(super) fn parse(url: &str) -> Result<Settings, ChannelError> {
    let invalid = |reason| ChannelError::InvalidUrl {
        url: crate::redact(url),
        reason,
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(ChannelError::UnsupportedUrl {
            url: crate::redact(url),
        });
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut lease = DEFAULT_LEASE;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("lease", value)) => {
                lease = weft_config::manifest::parse_duration(value)
                    .map_err(|_| invalid("`lease` must be an ISO-8601 duration such as PT30S"))?;
                if lease < Duration::from_millis(100) {
                    return Err(invalid("`lease` must be at least PT0.1S"));
                }
            }
            _ => rest.push(pair),
        }
    }
    let sqlx_url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut connect = PgConnectOptions::from_str(&sqlx_url)
        .map_err(|_| invalid("not a valid PostgreSQL connection URL"))?
        // Statement logging costs a measurable share of the append path.
        .disable_statement_logging();
    if connect.get_application_name().is_none() {
        connect = connect.application_name("weft");
    }
    Ok(Settings { connect, lease })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let settings = parse("postgres://u@db.example:5433/weft?lease=PT5S").unwrap();
        assert_eq!(settings.lease, Duration::from_secs(5));
        assert_eq!(settings.connect.get_host(), "db.example");
        assert_eq!(settings.connect.get_port(), 5433);
        assert_eq!(settings.connect.get_database(), Some("weft"));
        assert_eq!(settings.connect.get_application_name(), Some("weft"));
        let settings = parse("postgresql://u@h/weft?application_name=mine&lease=PT0.5S").unwrap();
        assert_eq!(settings.lease, Duration::from_millis(500));
        assert_eq!(settings.connect.get_application_name(), Some("mine"));
        assert_eq!(parse("postgres://h/d").unwrap().lease, DEFAULT_LEASE);
        for bad in [
            "postgres://h/d?lease=30",
            "postgres://h/d?lease=PT0S",
            "postgres://h:notaport/d",
        ] {
            assert!(
                matches!(parse(bad), Err(ChannelError::InvalidUrl { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("sqlite://x.db"),
            Err(ChannelError::UnsupportedUrl { .. })
        ));
    }
}
