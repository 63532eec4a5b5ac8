//! How fast Kafka takes events from a bare rdkafka producer, and from Weft's Kafka channel
//! with the same producer settings, so that the channel's own cost is visible.
//!
//! ```sh
//! cargo run --release -p weft-channels --example kafka_produce -- \
//!     kafka://127.0.0.1:19092 [CONCURRENCY=32] [SECONDS=10] [PARTITIONS=10]
//! ```
//!
//! Each of CONCURRENCY tasks sends one event (256 data bytes, CloudEvents headers) and
//! waits for Kafka's acknowledgement before sending the next: the shape of the ingress
//! under that many concurrent single-event requests.
//! - `native`: `FutureProducer::send_result` with the channel's producer settings
//!   (`acks=all`, idempotent, `linger.ms=0.5`), the partition switching every 10 ms as the
//!   channel's keyless appends do.
//! - `channel`: `KafkaChannel::append` with one event per call (what one request does).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use weft_channels::kafka::KafkaChannel;
use weft_channels::{Channel, ChannelOptions};
use weft_config::{Event, ObjectKey};

fn event(i: u64) -> Event {
    let mut event = Event::new(format!("bench-{i}"), "/bench", "dev.weft.bench").unwrap();
    event
        .set_datacontenttype(Some("application/octet-stream".into()))
        .unwrap();
    event.set_data(Some(Bytes::from(vec![b'x'; 256])));
    event
}

/// Runs `concurrency` closed loops of `one` for `duration`; returns events per second.
async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, one: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let one = Arc::new(one);
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (one, done, next) = (Arc::clone(&one), Arc::clone(&done), Arc::clone(&next));
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    one(next.fetch_add(1, Ordering::Relaxed)).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// One closed-loop run of the bare producer: the same records (headers, 256 data bytes)
/// to the same partitions, without the channel's encoding, checks and bookkeeping.
async fn native(
    producer: &FutureProducer,
    topic: &str,
    partitions: u64,
    concurrency: usize,
    duration: Duration,
) -> f64 {
    let (producer, topic) = (producer.clone(), topic.to_owned());
    let started = Instant::now();
    closed_loop(concurrency, duration, move |i| {
        let (producer, topic) = (producer.clone(), topic.clone());
        let partition = (started.elapsed().as_millis() / 10 % u128::from(partitions)) as i32;
        async move {
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
            let record = FutureRecord::<str, [u8]>::to(&topic)
                .partition(partition)
                .payload(&payload)
                .headers(headers);
            let delivery = producer.send_result(record).map_err(|(e, _)| e).unwrap();
            delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    })
    .await
}

/// One closed-loop run of single-event appends through the channel.
async fn channel(
    channel: &Arc<KafkaChannel>,
    broker: &ObjectKey,
    concurrency: usize,
    duration: Duration,
) -> f64 {
    let (ch, broker) = (Arc::clone(channel), broker.clone());
    closed_loop(concurrency, duration, move |i| {
        let (ch, broker) = (Arc::clone(&ch), broker.clone());
        async move { ch.append(&broker, vec![event(i)]).await.unwrap() }
    })
    .await
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

    let prefix = format!("bench{}", std::process::id());
    let url = format!("{base}?prefix={prefix}&partitions={partitions}&replication=1");
    let kafka = Arc::new(
        KafkaChannel::open(&url, ChannelOptions::default())
            .await
            .unwrap(),
    );
    let broker = ObjectKey::new("default", "bench");
    kafka.ensure_log(&broker).await.unwrap();
    let topic = format!("{prefix}-broker-default.bench");
    let servers = base.trim_start_matches("kafka://").to_owned();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0.5")
        .set("socket.nagle.disable", "true")
        .create()
        .unwrap();

    println!(
        "concurrency {concurrency}, {partitions} partitions, {}s per run, alternating",
        duration.as_secs()
    );
    let (mut natives, mut channels) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        let n = native(&producer, &topic, partitions, concurrency, duration).await;
        let c = channel(&kafka, &broker, concurrency, duration).await;
        println!("round {round}: native {n:>7.0} events/s, KafkaChannel::append {c:>7.0} events/s");
        natives.push(n);
        channels.push(c);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (n, c) = (median(&mut natives), median(&mut channels));
    println!(
        "median: native {n:.0} events/s, channel {c:.0} events/s ({:.0}% of native)",
        100.0 * c / n
    );
    kafka.delete_log(&broker).await.unwrap();
    kafka.close().await.unwrap();
}
