//! PostgreSQL-only behaviour that the conformance suite cannot express: processes that
//! vanish, cut connections, notifications between processes, group commits. Each test
//! works in a schema of its own on the server `WEFT_POSTGRES_URL` names.

#![cfg(feature = "postgres")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{PgSchema, WAIT, assert_idle, event, events, id_range, ids, key, take};
use tokio::time::Instant;
use weft_channels::postgres::PostgresChannel;
use weft_channels::{Channel, ChannelOptions, Delivery, Subscription};

async fn open(url: &str) -> PostgresChannel {
    PostgresChannel::open(url, ChannelOptions::default())
        .await
        .unwrap()
}

/// Like `common::take`, but a failed `next` is retried, as the dispatcher does.
async fn take_retrying(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events arrived",
            got.len()
        );
        match tokio::time::timeout(WAIT, sub.next(n - got.len())).await {
            Ok(Ok(batch)) => got.extend(batch),
            Ok(Err(error)) => {
                assert!(error.is_retriable(), "{error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {}
        }
    }
    got
}

/// Cuts every connection the test's channels hold, as a server restart would.
async fn cut_connections(schema: &PgSchema) {
    schema
        .admin(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{}' AND pid <> pg_backend_pid()",
            schema.name
        ))
        .await;
}

/// A process that vanishes (its channel dropped without `close`: nothing released, nothing
/// renewed) leaves its leases to expire; another process then delivers their unfinished
/// events again, and only those: all its leases, about a second after they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_a_vanished_process_expire_and_are_delivered_again() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let url = format!("{}&lease=PT1S", schema.url);
    let (broker, trigger) = (key("b"), key("t"));
    let vanished = open(&url).await;
    vanished.ensure_log(&broker).await.unwrap();
    let mut sub = vanished.subscribe(&broker, &trigger).await.unwrap();
    // Three claims, so three leases: 1..=10, 11..=20, 21..=30.
    let mut got = Vec::new();
    for first in [1, 11, 21] {
        vanished
            .append(&broker, events(first, first + 9))
            .await
            .unwrap();
        got.extend(take(&mut sub, 10).await);
    }
    got.into_iter().take(4).for_each(|d| d.ack.ack());
    // Asking for the backlog writes the progress: 1..=4 are done for good.
    assert_eq!(vanished.backlog(&broker, &trigger).await.unwrap(), 26);
    // The subscription is never dropped (so it releases nothing), the channel stops.
    std::mem::forget(sub);
    drop(vanished);
    let gone = Instant::now();

    let survivor = open(&url).await;
    let mut sub = survivor.subscribe(&broker, &trigger).await.unwrap();
    let again = take(&mut sub, 26).await;
    let taken_over = gone.elapsed();
    assert_eq!(ids(&again), id_range(5, 30));
    assert!(
        taken_over >= Duration::from_millis(500),
        "taken over after {taken_over:?}, before the leases expired"
    );
    assert!(
        taken_over < Duration::from_secs(3),
        "took {taken_over:?} for three leases of 1 s"
    );
    again.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(survivor.backlog(&broker, &trigger).await.unwrap(), 0);
    assert_idle(&mut sub).await;
    survivor.close().await.unwrap();
}

/// A consumer that ends releases its lease at once: another process, waiting, receives the
/// unacknowledged events without waiting for the lease to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_leases_move_to_another_process_at_once() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (broker, trigger) = (key("b"), key("t"));
    let (first, second) = (open(&schema.url).await, open(&schema.url).await);
    first.ensure_log(&broker).await.unwrap();
    let mut leaving = first.subscribe(&broker, &trigger).await.unwrap();
    first.append(&broker, events(1, 10)).await.unwrap();
    let got = take(&mut leaving, 10).await;
    let mut staying = second.subscribe(&broker, &trigger).await.unwrap();
    let waiting = tokio::spawn(async move {
        let got = take(&mut staying, 7).await;
        (staying, got)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let released = Instant::now();
    got.into_iter().take(3).for_each(|d| d.ack.ack());
    drop(leaving);
    let (mut staying, again) = waiting.await.unwrap();
    assert_eq!(ids(&again), id_range(4, 10));
    // The default lease is 30 s and idle subscriptions poll every second: only the
    // release and its notification can be this quick.
    assert!(
        released.elapsed() < Duration::from_millis(900),
        "took {:?}",
        released.elapsed()
    );
    again.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(second.backlog(&broker, &trigger).await.unwrap(), 0);
    assert_idle(&mut staying).await;
}

/// An append in one process wakes a waiting subscription in another through `NOTIFY`, also
/// after the notification connection was cut and re-established.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wake_other_processes_also_after_a_cut() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (broker, trigger) = (key("b"), key("t"));
    let (producer, consumer) = (open(&schema.url).await, open(&schema.url).await);
    producer.ensure_log(&broker).await.unwrap();
    let mut sub = consumer.subscribe(&broker, &trigger).await.unwrap();
    for round in 1..=2 {
        if round == 2 {
            cut_connections(&schema).await;
            // Give the listener its reconnection; appends fail meanwhile, retriably.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let waiting = tokio::spawn(async move {
            let got = take_retrying(&mut sub, 1).await;
            (sub, Instant::now(), got)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let appended = loop {
            match producer.append(&broker, vec![event(round)]).await {
                Ok(()) => break Instant::now(),
                Err(error) => assert!(error.is_retriable(), "{error}"),
            }
        };
        let (returned, arrived, got) = waiting.await.unwrap();
        sub = returned;
        assert_eq!(ids(&got), id_range(round, round));
        let latency = arrived.saturating_duration_since(appended);
        // Idle subscriptions poll every second; a notification is far quicker.
        assert!(
            latency < Duration::from_millis(700),
            "round {round}: {latency:?}"
        );
        got.into_iter().for_each(|d| d.ack.ack());
    }
}

/// Every connection of a channel is cut, as a server restart does. Once the server is
/// back, callers notice nothing: statements that find their connection dead are tried on
/// another. Nothing acknowledged is delivered again, nothing appended is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_by_itself_when_its_connections_are_cut() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (broker, trigger) = (key("b"), key("t"));
    let ch = open(&schema.url).await;
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(1, 3)).await.unwrap();
    take(&mut sub, 3)
        .await
        .into_iter()
        .for_each(|d| d.ack.ack());
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 0);
    cut_connections(&schema).await;
    for i in 4..=6 {
        ch.append(&broker, vec![event(i)]).await.unwrap();
    }
    let got = take(&mut sub, 3).await;
    assert_eq!(ids(&got), id_range(4, 6));
    got.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 0);
    assert_eq!(ch.subscriptions(&broker).await.unwrap(), vec![trigger]);
    assert_idle(&mut sub).await;
    ch.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let ch = Arc::new(open(&schema.url).await);
    let broker = key("b");
    ch.ensure_log(&broker).await.unwrap();
    // A cursor at the start keeps periodic retention from deleting what is counted below.
    let _sub = ch.subscribe(&broker, &key("t")).await.unwrap();
    let appends: Vec<_> = (0..200)
        .map(|i| {
            let (ch, broker) = (Arc::clone(&ch), broker.clone());
            tokio::spawn(async move { ch.append(&broker, vec![event(i)]).await })
        })
        .collect();
    for append in appends {
        append.await.unwrap().unwrap();
    }
    assert!(
        ch.commits() < 100,
        "{} commits for 200 appends",
        ch.commits()
    );
    assert_eq!(ch.stored_events(&broker).await.unwrap(), 200);
    ch.delete_subscription(&broker, &key("t")).await.unwrap();
    ch.compact().await.unwrap();
    assert_eq!(
        ch.stored_events(&broker).await.unwrap(),
        0,
        "no cursor keeps none"
    );
}
