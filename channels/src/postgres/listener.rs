//! `LISTEN weft_events`: notifications from appends, released leases and deleted logs in
//! any process become wake-ups of this process's subscriptions.
//!
//! The listening connection has a pool of its own (one connection), so it never waits for
//! the busy pool. When the connection is lost, sqlx reconnects and listens again; every
//! subscription is woken then, as notifications sent in between are gone. While it cannot
//! reconnect, this task retries with backoff, and the keeper's once-a-second look at the
//! logs wakes subscriptions meanwhile.

use std::sync::Weak;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tracing::{info, warn};

use super::consts::{NOTIFY_CHANNEL, NOTIFY_NEW, NOTIFY_TAKEOVER};
use super::shared::Shared;

/// The first wait after a failure; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The broker id in a payload `<schema>:<broker id>[!]` meant for `schema`, and whether it
/// tells of a released lease.
fn broker_of(payload: &str, schema: &str) -> Option<(i64, bool)> {
    let (payload, takeover) = match payload.strip_suffix(NOTIFY_TAKEOVER) {
        Some(rest) => (rest, true),
        None => (payload.strip_suffix(NOTIFY_NEW)?, false),
    };
    let (from, id) = payload.rsplit_once(':')?;
    let id = id.parse().ok().filter(|_| from == schema)?;
    Some((id, takeover))
}

/// Listens until the channel is gone (or the task is aborted by `close`).
pub(super) async fn run(shared: Weak<Shared>, pool: PgPool, schema: String) {
    let mut backoff = MIN_BACKOFF;
    let mut listener = loop {
        match connect(&pool).await {
            Ok(listener) => break listener,
            Err(error) => {
                warn!(%error, "postgres channel: cannot listen for notifications; polling meanwhile");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        if shared.strong_count() == 0 {
            return;
        }
    };
    backoff = MIN_BACKOFF;
    let mut failing = false;
    loop {
        let received = listener.try_recv().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match received {
            Ok(notification) => {
                if failing {
                    info!("postgres channel: listening for notifications again");
                    failing = false;
                    backoff = MIN_BACKOFF;
                    shared.wake_all();
                }
                match notification {
                    Some(notification) => {
                        if let Some((id, takeover)) = broker_of(notification.payload(), &schema) {
                            shared.wake(id, takeover);
                        }
                    }
                    // The connection was lost and re-established: what was sent in between
                    // is gone.
                    None => shared.wake_all(),
                }
            }
            Err(error) => {
                if !failing {
                    warn!(%error, "postgres channel: lost the notification connection; polling until it is back");
                    failing = true;
                }
                drop(shared);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_schema_and_broker() {
        assert_eq!(broker_of("weft:42", "weft"), Some((42, false)));
        assert_eq!(broker_of("weft:42!", "weft"), Some((42, true)));
        assert_eq!(broker_of("a:b:7", "a:b"), Some((7, false)));
        assert_eq!(broker_of("other:42", "weft"), None);
        assert_eq!(broker_of("weft:x", "weft"), None);
        assert_eq!(broker_of("42", "weft"), None);
    }
}
