//! The crash test: producers send without pause while `weft up` is killed with SIGKILL and
//! restarted on the same data directory, several times. Every event that got a 202 must
//! reach the sink in the end; duplicates are allowed (at-least-once) and counted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_e2e::{Producer, Sink, Weft, broker, event, ms, secs, trigger};

const PRODUCERS: usize = 4;
const KILLS: usize = 3;

/// A small xorshift generator: kill moments vary between runs, and the seed is printed so a
/// failing run can be told apart from the others.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration in `[lo, hi)` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        ms(lo + self.next() % (hi - lo))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_across_kill_9() {
    let sink = Sink::start().await;
    let mut weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("all.yaml", trigger("all").subscriber(sink.url("/all")))
        .start()
        .await;
    let url = weft.url("default", "default");
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let producer = Producer::new();
                let (mut sent, mut failed) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let e = event("com.example.crash")
                        .id(&format!("p{p}-{sent}"))
                        .build();
                    sent += 1;
                    match producer.send(&url, &e).await {
                        Ok(r) if r.status.as_u16() == 202 => {
                            acked.lock().unwrap().insert(e.id().to_owned());
                        }
                        // Down or restarting: not acknowledged, so not owed. Back off a
                        // little instead of spinning on connection refused.
                        _ => {
                            failed += 1;
                            tokio::time::sleep(ms(20)).await;
                        }
                    }
                }
                (sent, failed)
            })
        })
        .collect();

    let mut rng = Rng::from_clock();
    println!("kill schedule seed {}", rng.0);
    for kill in 1..=KILLS {
        let up = rng.millis(800, 2500);
        tokio::time::sleep(up).await;
        let before = acked.lock().unwrap().len();
        weft.kill_9().await;
        let down = rng.millis(0, 300);
        tokio::time::sleep(down).await;
        weft.restart().await;
        println!(
            "kill {kill}: after {up:?} up ({before} acknowledged so far), down {down:?}, restarted"
        );
    }
    // Let producers see the last restart succeed before stopping them.
    tokio::time::sleep(secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut sent, mut failed) = (0, 0);
    for p in producers {
        let (s, f) = p.await.unwrap();
        sent += s;
        failed += f;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    println!(
        "sent {sent}, acknowledged {}, not acknowledged {failed}",
        acked.len()
    );
    assert!(
        acked.len() > 100,
        "the test only proves something if many events were acknowledged"
    );

    let lost = sink.wait_for_ids(&acked, secs(60)).await;
    let all = sink.requests();
    let unique: HashSet<&str> = all.iter().map(|r| r.id()).collect();
    println!(
        "sink got {} deliveries, {} distinct ids, {} duplicates",
        all.len(),
        unique.len(),
        all.len() - unique.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged events were lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(10).collect::<Vec<_>>()
    );
}
