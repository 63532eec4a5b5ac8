//! SQLite-only behaviour that the conformance suite cannot express: what survives when
//! the process stops without closing the channel.

#![cfg(feature = "sqlite")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{events, ids, key, take};
use weft_channels::sqlite::SqliteChannel;
use weft_channels::{Channel, ChannelOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Appends and acknowledges, then drops the whole runtime: the writer is cut off at its
/// next await, without the orderly flush of `close`. Every appended event must still be
/// there, and everything not acknowledged must be delivered again.
#[test]
fn abrupt_stop_loses_no_appended_event() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/weft.db", dir.path().display());
    let (broker, trigger) = (key("b"), key("t"));

    let first = runtime();
    first.block_on(async {
        let ch = SqliteChannel::open(&url, ChannelOptions::default())
            .await
            .unwrap();
        ch.ensure_log(&broker).await.unwrap();
        let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
        ch.append(&broker, events(1, 50)).await.unwrap();
        let got = take(&mut sub, 50).await;
        // 1..=20 in order, then every other one: the committed cursor can reach 20 at most.
        for (i, d) in got.into_iter().enumerate() {
            if i < 20 || i % 2 == 1 {
                d.ack.ack();
            }
        }
        std::mem::forget(sub);
        std::mem::forget(ch);
    });
    first.shutdown_timeout(Duration::ZERO);

    runtime().block_on(async {
        let ch = SqliteChannel::open(&url, ChannelOptions::default())
            .await
            .unwrap();
        let backlog = ch.backlog(&broker, &trigger).await.unwrap();
        assert!((30..=50).contains(&backlog), "backlog {backlog}");
        let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
        let again = ids(&take(&mut sub, backlog as usize).await);
        let expected: Vec<_> = (51 - backlog as usize..=50)
            .map(|i| format!("e{i}"))
            .collect();
        assert_eq!(
            again, expected,
            "redelivery resumes right after the stored cursor"
        );
        let unacked: BTreeSet<_> = (21..=50).step_by(2).map(|i| format!("e{i}")).collect();
        assert!(
            unacked.iter().all(|id| again.contains(id)),
            "no unacked event is lost"
        );
        ch.close().await.unwrap();
    });
}
