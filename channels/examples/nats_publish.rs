//! The native JetStream publish rate beside Weft's NATS channel, on the same server, so
//! that Weft's own overhead is visible next to `weft bench ingest` on
//! `weft up --channel nats://…`.
//!
//! ```sh
//! cargo run --release -p weft-channels --no-default-features --features nats \
//!     --example nats_publish -- nats://127.0.0.1:14222 [--seconds 5] [--concurrency 32] [--size 256]
//! ```
//!
//! Three closed loops, each for `--seconds`, on a stream configured as Weft configures a
//! broker's (file storage, interest retention, one durable consumer so that every message
//! is stored):
//! - `raw`: `--concurrency` tasks, each publishing one message with async-nats and awaiting
//!   its `PubAck` before the next, as one ingress request does;
//! - `channel`: the same through [`NatsChannel::append`] with one event per call (the
//!   CloudEvents binding's headers, the stream check, the contiguity lock);
//! - `consume`: one subscription taking what `channel` stored, 256 at a time, and
//!   acknowledging each event (the dispatcher's side);
//! - `pipelined`: one task keeping 256 publishes in flight: the server's ceiling.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use weft_channels::nats::NatsChannel;
use weft_channels::{Channel, ChannelOptions};
use weft_config::{AttributeValue, Event, ObjectKey};

struct Args {
    url: String,
    seconds: u64,
    concurrency: usize,
    size: usize,
}

fn args() -> Args {
    let mut args = Args {
        url: "nats://127.0.0.1:14222".into(),
        seconds: 5,
        concurrency: 32,
        size: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match arg.as_str() {
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--size" => args.size = value().parse().expect("--size BYTES"),
            url if url.starts_with("nats://") => args.url = url.into(),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn report(name: &str, count: u64, elapsed: Duration) {
    println!(
        "{name:<10} {count:>9} events in {:.1} s = {:>8.0} events/s",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
}

/// Runs `concurrency` copies of `one` until `seconds` passed; returns how many completed.
async fn closed_loop<F, Fut>(args: &Args, one: F) -> (u64, Duration)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let one = Arc::new(one);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (one, done) = (one.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    one(done.fetch_add(1, Ordering::Relaxed)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (done.load(Ordering::Relaxed), started.elapsed())
}

#[tokio::main]
async fn main() {
    let args = args();
    let client = async_nats::connect(args.url.as_str()).await.unwrap();
    let js = jetstream::new(client);
    let payload = Bytes::from(vec![b'x'; args.size]);

    // raw and pipelined: a stream like a broker's, with one durable consumer.
    let _ = js.delete_stream("weftbench_raw").await;
    let raw = js
        .create_stream(stream::Config {
            name: "weftbench_raw".into(),
            subjects: vec!["weftbench.raw".into()],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    raw.create_consumer(consumer::pull::Config {
        durable_name: Some("t".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    })
    .await
    .unwrap();
    let (count, elapsed) = closed_loop(&args, {
        let (js, payload) = (js.clone(), payload.clone());
        move |_| {
            let (js, payload) = (js.clone(), payload.clone());
            async move {
                js.publish("weftbench.raw", payload)
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    report("raw", count, elapsed);

    // channel: one event per append, as the ingress does for a binary-mode request.
    let url = format!("{}?prefix=weftbench", args.url);
    let channel = Arc::new(
        NatsChannel::open(&url, ChannelOptions::default())
            .await
            .unwrap(),
    );
    let broker = ObjectKey::new("default", "bench");
    channel.ensure_log(&broker).await.unwrap();
    drop(
        channel
            .subscribe(&broker, &ObjectKey::new("default", "t"))
            .await
            .unwrap(),
    );
    let (count, elapsed) = closed_loop(&args, {
        let (channel, broker, size) = (channel.clone(), broker.clone(), args.size);
        move |i| {
            let (channel, broker) = (channel.clone(), broker.clone());
            async move {
                let mut event = Event::new(format!("e{i}"), "/bench", "dev.weft.bench").unwrap();
                event
                    .set_extension("benchts", AttributeValue::String(i.to_string()))
                    .unwrap();
                event
                    .set_datacontenttype(Some("application/octet-stream".into()))
                    .unwrap();
                event.set_data(Some(Bytes::from(vec![b'x'; size])));
                channel.append(&broker, vec![event]).await.unwrap();
            }
        }
    })
    .await;
    report("channel", count, elapsed);

    // consume: the trigger's subscription takes and acknowledges everything appended.
    let mut sub = channel
        .subscribe(&broker, &ObjectKey::new("default", "t"))
        .await
        .unwrap();
    let started = Instant::now();
    let mut left = count;
    while left > 0 {
        let batch = sub.next(256).await.unwrap();
        left = left.saturating_sub(batch.len() as u64);
        batch.into_iter().for_each(|d| d.ack.ack());
    }
    channel.flush().await;
    report("consume", count, started.elapsed());
    drop(sub);
    channel.delete_log(&broker).await.unwrap();

    // pipelined: one task, 256 publishes in flight.
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let (mut window, mut count) = (VecDeque::new(), 0u64);
    while Instant::now() < until {
        while window.len() < 256 {
            window.push_back(js.publish("weftbench.raw", payload.clone()).await.unwrap());
        }
        window.pop_front().unwrap().await.unwrap();
        count += 1;
    }
    for ack in window {
        ack.await.unwrap();
        count += 1;
    }
    report("pipelined", count, started.elapsed());
    js.delete_stream("weftbench_raw").await.unwrap();
}
