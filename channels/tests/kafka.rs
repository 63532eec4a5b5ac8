//! Kafka-only behaviour the conformance suite cannot express: replicas actually splitting
//! a trigger's partitions, and the records other Kafka clients see.

#![cfg(feature = "kafka")]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{IDLE, event, ids, key, keyed_event, take};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weft_channels::Channel;
use weft_channels::kafka::KafkaChannel;

async fn open(url: &str) -> Arc<KafkaChannel> {
    Arc::new(common::kafka::open(url).await)
}

/// Two processes subscribed to one trigger split its partitions: once the group has
/// settled, both receive events, and together they receive each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_the_partitions() {
    let Some(url) = common::kafka::unique_url(4) else {
        return;
    };
    let (one, two) = (open(&url).await, open(&url).await);
    let (broker, trigger) = (key("b"), key("t"));
    one.ensure_log(&broker).await.unwrap();
    let mut subs = [
        one.subscribe(&broker, &trigger).await.unwrap(),
        two.subscribe(&broker, &trigger).await.unwrap(),
    ];
    let (mut sent, mut got, mut per_member) = (0, Vec::new(), [0; 2]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Keep publishing until the rebalance has given both members partitions.
    while per_member.contains(&0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "one member never received anything: {per_member:?}"
        );
        for _ in 0..4 {
            one.append(&broker, vec![event(sent + 1), event(sent + 2)])
                .await
                .unwrap();
            sent += 2;
        }
        for (i, sub) in subs.iter_mut().enumerate() {
            while let Ok(batch) = tokio::time::timeout(IDLE, sub.next(100)).await {
                let batch = batch.unwrap();
                per_member[i] += batch.len();
                got.extend(ids(&batch));
                batch.into_iter().for_each(|d| d.ack.ack());
            }
        }
    }
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), sent, "every event arrives ({per_member:?})");
    assert_eq!(got.len(), sent, "no event arrives twice ({per_member:?})");
    assert_eq!(one.backlog(&broker, &trigger).await.unwrap(), 0);
}

/// What other Kafka clients see: the broker's topic under its documented name, records in
/// the CloudEvents binary binding with the partition key as record key, and the trigger's
/// cursor as its consumer group's committed offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_offsets_are_plain_kafka() {
    let Some(url) = common::kafka::unique_url(1) else {
        return;
    };
    let prefix = url
        .split("prefix=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let servers = url
        .strip_prefix("kafka://")
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let channel = open(&url).await;
    let (broker, trigger) = (key("orders"), key("audit"));
    channel.ensure_log(&broker).await.unwrap();
    let mut sub = channel.subscribe(&broker, &trigger).await.unwrap();
    channel
        .append(&broker, vec![keyed_event(1, "k1"), event(2)])
        .await
        .unwrap();
    take(&mut sub, 2)
        .await
        .into_iter()
        .take(1)
        .for_each(|d| d.ack.ack());
    drop(sub);
    channel.close().await.unwrap(); // waits for the consumer to commit and leave

    let topic = format!("{prefix}-broker-default.orders");
    let group = format!("{topic}/default.audit");
    let (records, committed) = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, 0);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap()
            .elements()[0]
            .offset();
        let mut from = TopicPartitionList::new();
        from.add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&from).unwrap();
        let mut records = Vec::new();
        while records.len() < 2 {
            let message = consumer.poll(Duration::from_secs(10)).unwrap().unwrap();
            let headers: Vec<(String, String)> = (message.headers().unwrap().iter())
                .map(|h| {
                    let value = String::from_utf8(h.value.unwrap().to_vec()).unwrap();
                    (h.key.to_owned(), value)
                })
                .collect();
            let key = message
                .key()
                .map(|k| String::from_utf8(k.to_vec()).unwrap());
            let value = message
                .payload()
                .map(|v| String::from_utf8(v.to_vec()).unwrap());
            records.push((key, headers, value));
        }
        (records, committed)
    })
    .await
    .unwrap();
    assert_eq!(
        committed,
        Offset::Offset(1),
        "e1 is acknowledged, e2 is not"
    );
    let (key, headers, value) = &records[0];
    assert_eq!(key.as_deref(), Some("k1"));
    assert_eq!(value.as_deref(), Some("{\"n\":1}"));
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("ce_specversion"), Some("1.0"));
    assert_eq!(header("ce_id"), Some("e1"));
    assert_eq!(header("ce_source"), Some("/conformance"));
    assert_eq!(header("ce_type"), Some("dev.weft.test"));
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("ce_partitionkey"), Some("k1"));
    assert_eq!(header("ce_n"), Some("1"));
    assert_eq!(
        header("weft_extensions"),
        Some("n=Integer,partitionkey=String")
    );
    assert_eq!(records[1].0, None, "no partition key, no record key");
}
