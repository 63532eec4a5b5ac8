//! Tests against librdkafka's mock cluster, which needs no Kafka server. It has no admin
//! API, so topics are created on the mock directly; everything else goes through the
//! channel. The conformance suite (`channels/tests/`) runs against a real Kafka.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use weft_config::AttributeValue;

use super::*;
use crate::Delivery;

fn event(i: usize, key: Option<&str>) -> Event {
    let mut event = Event::new(format!("e{i}"), "/mock", "dev.weft.test").unwrap();
    if let Some(key) = key {
        (event.set_extension("partitionkey", AttributeValue::String(key.into()))).unwrap();
    }
    event.set_data(Some(Bytes::from(format!("{i}"))));
    event
}

/// A channel on a fresh mock cluster with the broker's topic already created.
async fn mock_channel(
    partitions: i32,
) -> (
    MockCluster<'static, DefaultProducerContext>,
    KafkaChannel,
    ObjectKey,
) {
    let mock = MockCluster::new(1).unwrap();
    let url = format!(
        "kafka://{}?partitions={partitions}&replication=1&timeout_ms=1500",
        mock.bootstrap_servers()
    );
    let channel = KafkaChannel::open(&url, ChannelOptions::default())
        .await
        .unwrap();
    let broker = ObjectKey::new("default", "b");
    let topic = channel.shared.config.topic(&broker).unwrap();
    mock.create_topic(&topic, partitions, 1).unwrap();
    (mock, channel, broker)
}

async fn take(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(15), sub.next(n - got.len()))
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived", got.len()))
            .unwrap();
        got.extend(batch);
    }
    got
}

fn ids(got: &[Delivery], key: &str) -> Vec<String> {
    got.iter()
        .filter(|d| binding::key(&d.event).as_deref() == Some(key))
        .map(|d| d.event.id().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_fails_within_the_timeout_while_kafka_is_down_then_recovers() {
    let (mock, channel, broker) = mock_channel(1).await;
    channel.append(&broker, vec![event(1, None)]).await.unwrap();

    mock.broker_down(-1).unwrap();
    let started = Instant::now();
    let error = channel
        .append(&broker, vec![event(2, None)])
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChannelError::Unavailable { .. }),
        "a retriable error, answered as 503: {error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed after {:?}",
        started.elapsed()
    );

    mock.broker_up(-1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match channel.append(&broker, vec![event(3, None)]).await {
            Ok(()) => break,
            Err(error) => {
                assert!(error.is_retriable(), "{error:?}");
                assert!(Instant::now() < deadline, "no recovery: {error}");
            }
        }
    }
    channel.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_events_keep_their_order_and_acks_commit_per_partition() {
    let (_mock, channel, broker) = mock_channel(3).await;
    let trigger = ObjectKey::new("default", "t");
    let mut sub = channel.subscribe(&broker, &trigger).await.unwrap();
    let keys = ["a", "b", "c", "d"];
    let sent: Vec<_> = (1..=40).map(|i| event(i, Some(keys[i % 4]))).collect();
    for chunk in sent.chunks(3) {
        channel.append(&broker, chunk.to_vec()).await.unwrap();
    }
    let got = take(&mut sub, 40).await;
    for key in keys {
        let expected: Vec<_> = (sent.iter())
            .filter(|e| binding::key(e).as_deref() == Some(key))
            .map(|e| e.id().to_owned())
            .collect();
        assert_eq!(ids(&got, key), expected, "key {key}");
    }
    assert_eq!(channel.backlog(&broker, &trigger).await.unwrap(), 40);
    // Acknowledge everything but key "a": its partition keeps the rest of its backlog.
    let mut unacked = 0;
    for d in got {
        if binding::key(&d.event).as_deref() == Some("a") {
            unacked += 1;
        } else {
            d.ack.ack();
        }
    }
    let backlog = channel.backlog(&broker, &trigger).await.unwrap();
    assert!(
        (unacked..40).contains(&backlog),
        "backlog {backlog} with {unacked} unacked"
    );
    channel.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_are_not_cloudevents_are_skipped_and_passed() {
    let (mock, channel, broker) = mock_channel(1).await;
    let trigger = ObjectKey::new("default", "t");
    let mut sub = channel.subscribe(&broker, &trigger).await.unwrap();
    let topic = channel.shared.config.topic(&broker).unwrap();
    let foreign: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    foreign
        .send(BaseRecord::<str, str>::to(&topic).payload("not an event"))
        .map_err(|(e, _)| e)
        .unwrap();
    foreign.flush(Duration::from_secs(5)).unwrap();
    channel.append(&broker, vec![event(1, None)]).await.unwrap();
    let got = take(&mut sub, 1).await;
    assert_eq!(got[0].event, event(1, None));
    assert_eq!(
        channel.backlog(&broker, &trigger).await.unwrap(),
        1,
        "the skipped record is passed, the event is in flight"
    );
    got.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(
        channel.backlog(&broker, &trigger).await.unwrap(),
        0,
        "the cursor passes the skipped record"
    );
    channel.close().await.unwrap();
}
