//! Kafka's own append rate on this machine from a bare rdkafka producer with the Kafka
//! channel's current producer settings (`acks=all`, idempotent, `linger.ms=0`), beside the
//! old `linger.ms=0.5` that `kafka_produce` still uses for its `native` figure, and the
//! server's ceiling with many records in flight (BENCHMARKS.md, "Backends (issue 5)").
//!
//! ```sh
//! cargo run --release -p weft-channels --example kafka_native -- \
//!     kafka://127.0.0.1:19092 [CONCURRENCY=32] [SECONDS=10] [PARTITIONS=10]
//! ```
//!
//! - `linger 0` / `linger 0.5`: CONCURRENCY tasks, each producing one record (256 data
//!   bytes, the CloudEvents binding's headers) to the partition the channel's keyless
//!   appends would pick (switching every 10 ms) and awaiting its acknowledgement before the
//!   next: the shape of the ingress under that many concurrent single-event requests.
//!   Three rounds, alternating; the median is reported.
//! - `pipelined`: one task keeping 1,024 records in flight (`linger.ms=0`): what the broker
//!   takes when the client never waits.
//!
//! The topic is created (and deleted at the end) through `KafkaChannel::ensure_log`, so it
//! has the partitions and replication of a broker's topic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use weft_channels::kafka::KafkaChannel;
use weft_channels::{Channel, ChannelOptions};
use weft_config::ObjectKey;

fn producer(servers: &str, linger_ms: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms)
        .set("socket.nagle.disable", "true")
        .create()
        .unwrap()
}

/// Sends record `i` to `partition` and returns the delivery future.
fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    i: u64,
) -> rdkafka::producer::DeliveryFuture {
    let id = format!("bench-{i}");
    let attributes = [
        ("ce_specversion", "1.0"),
        ("ce_id", id.as_str()),
        ("ce_source", "/bench"),
        ("ce_type", "dev.weft.bench"),
        ("content-type", "application/octet-stream"),
    ];
    let headers = attributes
        .iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(*value),
            })
        });
    let payload = [b'x'; 256];
    let record = FutureRecord::<str, [u8]>::to(topic)
        .partition(partition)
        .payload(&payload)
        .headers(headers);
    producer.send_result(record).map_err(|(e, _)| e).unwrap()
}

/// CONCURRENCY closed loops for `duration`; returns events per second.
async fn closed_loop(
    producer: &FutureProducer,
    topic: &str,
    partitions: u64,
    concurrency: usize,
    duration: Duration,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (producer, topic, done) = (producer.clone(), topic.to_owned(), done.clone());
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    let partition =
                        (started.elapsed().as_millis() / 10 % u128::from(partitions)) as i32;
                    let i = done.fetch_add(1, Ordering::Relaxed);
                    let delivery = send(&producer, &topic, partition, i);
                    delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// One task, 1,024 records in flight, for `duration`; returns events per second.
async fn pipelined(
    producer: &FutureProducer,
    topic: &str,
    partitions: u64,
    duration: Duration,
) -> f64 {
    let started = Instant::now();
    let (mut in_flight, mut sent, mut acked) = (FuturesUnordered::new(), 0u64, 0u64);
    while started.elapsed() < duration {
        while in_flight.len() < 1024 {
            let partition = (started.elapsed().as_millis() / 10 % u128::from(partitions)) as i32;
            in_flight.push(send(producer, topic, partition, sent));
            sent += 1;
        }
        in_flight
            .next()
            .await
            .unwrap()
            .unwrap()
            .map_err(|(e, _)| e)
            .unwrap();
        acked += 1;
    }
    let rate = acked as f64 / started.elapsed().as_secs_f64();
    while let Some(delivery) = in_flight.next().await {
        delivery.unwrap().map_err(|(e, _)| e).unwrap();
    }
    rate
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args
        .first()
        .cloned()
        .unwrap_or_else(|| "kafka://127.0.0.1:19092".into());
    let number = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().unwrap());
    let concurrency = number(1, 32) as usize;
    let duration = Duration::from_secs(number(2, 10));
    let partitions = number(3, 10);

    let prefix = format!("benchnative{}", std::process::id());
    let url = format!("{base}?prefix={prefix}&partitions={partitions}&replication=1");
    let kafka = KafkaChannel::open(&url, ChannelOptions::default())
        .await
        .unwrap();
    let broker = ObjectKey::new("default", "bench");
    kafka.ensure_log(&broker).await.unwrap();
    let topic = format!("{prefix}-broker-default.bench");
    let servers = base.trim_start_matches("kafka://").to_owned();
    let (zero, half) = (producer(&servers, "0"), producer(&servers, "0.5"));

    println!(
        "concurrency {concurrency}, {partitions} partitions, {}s per run, alternating",
        duration.as_secs()
    );
    let (mut zeros, mut halves) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        let z = closed_loop(&zero, &topic, partitions, concurrency, duration).await;
        let h = closed_loop(&half, &topic, partitions, concurrency, duration).await;
        println!("round {round}: linger 0 {z:>7.0} events/s, linger 0.5 {h:>7.0} events/s");
        zeros.push(z);
        halves.push(h);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (z, h) = (median(&mut zeros), median(&mut halves));
    println!("median: linger 0 {z:.0} events/s, linger 0.5 {h:.0} events/s");
    let p = pipelined(&zero, &topic, partitions, duration).await;
    println!("pipelined (1,024 in flight, linger 0): {p:.0} events/s");
    kafka.delete_log(&broker).await.unwrap();
    kafka.close().await.unwrap();
}
