//! SQLite-only behaviour that the conformance suite cannot express: what survives when
//! the process stops without closing the channel, and what keeps the files small while
//! events pour in.

#![cfg(feature = "sqlite")]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use common::{bare_event, events, ids, key, runtime, take};
use weft_channels::sqlite::SqliteChannel;
use weft_channels::{Channel, ChannelOptions};

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

/// 48 MiB of events from 8 producers at once: the write-ahead log is copied back and
/// started over as it goes, so it never holds more than a few MiB.
#[test]
fn the_write_ahead_log_stays_small_under_sustained_appends() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/weft.db", dir.path().display());
    let broker = key("b");
    runtime().block_on(async {
        let ch = Arc::new(
            SqliteChannel::open(&url, ChannelOptions::default())
                .await
                .unwrap(),
        );
        ch.ensure_log(&broker).await.unwrap();
        let data = Bytes::from(vec![b'x'; 16 * 1024]);
        let producers: Vec<_> = (0..8)
            .map(|p| {
                let (ch, broker, data) = (Arc::clone(&ch), broker.clone(), data.clone());
                tokio::spawn(async move {
                    for batch in 0..24 {
                        let events = (0..16)
                            .map(|i| {
                                let mut e = bare_event(format!("p{p}-{batch}-{i}"));
                                e.set_data(Some(data.clone()));
                                e
                            })
                            .collect();
                        ch.append(&broker, events).await.unwrap();
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("weft.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < 16 << 20,
            "the write-ahead log holds {} MiB after 48 MiB of appends",
            wal >> 20
        );
        ch.close().await.unwrap();
    });
}

/// When a trigger that held back 24,577 events goes away, they are all deleted within a
/// second or so, not 4,096 every half second.
#[test]
fn retention_catches_up_with_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/weft.db", dir.path().display());
    let (broker, trigger) = (key("b"), key("t"));
    runtime().block_on(async {
        let ch = SqliteChannel::open(&url, ChannelOptions::default())
            .await
            .unwrap();
        ch.ensure_log(&broker).await.unwrap();
        let sub = ch.subscribe(&broker, &trigger).await.unwrap();
        let total = 6 * 4096 + 1;
        for from in (1..=total).step_by(256) {
            ch.append(&broker, events(from, (from + 255).min(total)))
                .await
                .unwrap();
        }
        assert_eq!(ch.stored_events(&broker).await.unwrap(), total as u64);
        drop(sub);
        ch.delete_subscription(&broker, &trigger).await.unwrap();
        let released = Instant::now();
        while ch.stored_events(&broker).await.unwrap() > 0 {
            assert!(
                released.elapsed() < Duration::from_millis(1500),
                "{} of {total} passed events still stored after {:?}",
                ch.stored_events(&broker).await.unwrap(),
                released.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ch.close().await.unwrap();
    });
}
