//! How this backend runs its statements: tried again when the pooled connection turns out
//! to be dead ([`retrying`]), failures reported as [`ChannelError`]s ([`unavailable`]).
//! Every call of the channel, its subscriptions and its keeper goes through [`query`];
//! only the writer and its notifier, which report the database's own error, call
//! [`retrying`] directly.

use super::consts::POOL_SIZE;
use crate::ChannelError;
pub(super) use crate::sql::unavailable;

/// Whether the error means the connection is gone (the server restarted, or an operator
/// ended the session) rather than that the statement failed: the pool replaces such a
/// connection, so the statement may be tried again on another.
fn is_broken_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        // Class 08: connection exception; 57P01..57P05: the server shut down, crashed,
        // is starting, or an operator ended the session.
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Runs a database operation, and runs it again while the connection it got turns out to
/// be broken (at most once per pooled connection): after a server restart every idle
/// connection is dead, and callers should not see that. Only for operations that may run
/// twice; see [`is_broken_connection`].
pub(super) async fn retrying<T, F, Fut>(mut operation: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempts = 0;
    loop {
        match operation().await {
            Err(error) if is_broken_connection(&error) && attempts < POOL_SIZE => attempts += 1,
            result => return result,
        }
    }
}

/// Runs statements that may run twice, as [`retrying`] does, and reports a failure as
/// [`unavailable`] classifies it: the one way this backend asks the database.
pub(super) async fn query<T, F, Fut>(operation: F) -> Result<T, ChannelError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    retrying(operation).await.map_err(unavailable)
}
