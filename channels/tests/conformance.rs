//! The channel conformance suite: every test body takes any backend and runs against each
//! one (`conformance!` below generates one `#[tokio::test]` per backend per body).

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{
    Backend, IDLE, WAIT, assert_idle, event, events, id_range, ids, ids_per_key, key, keyed_event,
    take,
};
use weft_channels::ChannelError;

/// Generates, for one backend, a test module with one test per body.
macro_rules! conformance {
    ($backend:ident, $factory:path) => {
        mod $backend {
            conformance!(@tests $factory;
                publish_then_consume,
                next_never_returns_more_than_max,
                triggers_have_independent_cursors,
                new_trigger_starts_at_the_end,
                an_ensured_trigger_keeps_events_until_it_subscribes,
                unacked_events_are_redelivered_after_resubscribe,
                out_of_order_acks_commit_below_the_lowest_unacked,
                acked_cursor_survives_reopen,
                numbering_continues_after_retention_and_reopen,
                retention_keeps_what_a_cursor_has_not_passed,
                unknown_broker_is_an_error,
                delete_log_ends_subscriptions,
                listing_and_deleting_subscriptions,
                next_waits_then_wakes_on_append,
                group_commit_stores_every_concurrent_append_once,
                park_keeps_events_for_the_operator,
                order_is_kept_per_partition_key,
                two_consumers_share_one_trigger,
            );
        }
    };
    (@tests $factory:path; $($body:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $body() {
                let Some(backend) = $factory().await else {
                    return;
                };
                super::$body(backend).await;
            }
        )*
    };
}

conformance!(memory, crate::common::memory);
#[cfg(feature = "sqlite")]
conformance!(sqlite, crate::common::sqlite);
#[cfg(feature = "nats")]
conformance!(nats, crate::common::nats);
#[cfg(feature = "postgres")]
conformance!(postgres, crate::common::postgres);
#[cfg(feature = "kafka")]
conformance!(kafka, crate::common::kafka::kafka);
/// Kafka with four partitions per log: the bodies whose order holds per key or per append.
#[cfg(feature = "kafka")]
mod kafka_partitioned {
    conformance!(@tests crate::common::kafka::kafka_partitioned;
        order_is_kept_per_partition_key,
        two_consumers_share_one_trigger,
        group_commit_stores_every_concurrent_append_once,
        new_trigger_starts_at_the_end,
        an_ensured_trigger_keeps_events_until_it_subscribes,
        acked_cursor_survives_reopen,
    );
}

async fn publish_then_consume(b: Box<dyn Backend>) {
    let (ch, broker, trigger) = (b.channel(), key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    ch.ensure_log(&broker).await.unwrap(); // idempotent
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(1, 3)).await.unwrap();
    ch.append(&broker, events(4, 5)).await.unwrap();
    ch.append(&broker, Vec::new()).await.unwrap();
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 5);
    let got = take(&mut sub, 5).await;
    let sent = events(1, 5);
    assert_eq!(
        got.iter().map(|d| &d.event).collect::<Vec<_>>(),
        sent.iter().collect::<Vec<_>>(),
        "events come back whole and in order"
    );
    got.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 0);
    assert_idle(&mut sub).await;
}

async fn next_never_returns_more_than_max(b: Box<dyn Backend>) {
    let (ch, broker) = (b.channel(), key("b"));
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &key("t")).await.unwrap();
    ch.append(&broker, events(1, 10)).await.unwrap();
    assert!(sub.next(0).await.unwrap().is_empty());
    let mut seen = Vec::new();
    // `next` returns between 1 and `max` events: backends that fetch in batches (Kafka)
    // may hand out fewer than are stored, so the last size repeats until all arrived.
    let sizes = [3, 1, 2].into_iter().chain(std::iter::repeat(100));
    for max in sizes {
        if seen.len() == 10 {
            break;
        }
        let batch = sub.next(max).await.unwrap();
        assert!(
            !batch.is_empty() && batch.len() <= max,
            "max {max}: {}",
            batch.len()
        );
        seen.extend(ids(&batch));
    }
    assert_eq!(seen, id_range(1, 10));
}

async fn triggers_have_independent_cursors(b: Box<dyn Backend>) {
    let (ch, broker, one, two) = (b.channel(), key("b"), key("one"), key("two"));
    ch.ensure_log(&broker).await.unwrap();
    let mut first = ch.subscribe(&broker, &one).await.unwrap();
    let mut second = ch.subscribe(&broker, &two).await.unwrap();
    ch.append(&broker, events(1, 4)).await.unwrap();
    take(&mut first, 4)
        .await
        .into_iter()
        .for_each(|d| d.ack.ack());
    let early = take(&mut second, 2).await;
    assert_eq!(ids(&early), id_range(1, 2));
    early.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(ch.backlog(&broker, &one).await.unwrap(), 0);
    assert_eq!(ch.backlog(&broker, &two).await.unwrap(), 2);
    assert_eq!(ids(&take(&mut second, 2).await), id_range(3, 4));
}

async fn new_trigger_starts_at_the_end(b: Box<dyn Backend>) {
    let (ch, broker, late) = (b.channel(), key("b"), key("late"));
    ch.ensure_log(&broker).await.unwrap();
    let _early = ch.subscribe(&broker, &key("early")).await.unwrap();
    ch.append(&broker, events(1, 3)).await.unwrap();
    assert_eq!(
        ch.backlog(&broker, &late).await.unwrap(),
        0,
        "never subscribed"
    );
    let mut sub = ch.subscribe(&broker, &late).await.unwrap();
    assert_eq!(ch.backlog(&broker, &late).await.unwrap(), 0);
    ch.append(&broker, events(4, 5)).await.unwrap();
    assert_eq!(ch.backlog(&broker, &late).await.unwrap(), 2);
    assert_eq!(ids(&take(&mut sub, 2).await), id_range(4, 5));
    assert_idle(&mut sub).await;
}

/// What a controller relies on to report a trigger ready before any dispatcher runs it.
async fn an_ensured_trigger_keeps_events_until_it_subscribes(b: Box<dyn Backend>) {
    let (ch, broker, trigger) = (b.channel(), key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    ch.append(&broker, events(1, 2)).await.unwrap(); // before the trigger existed
    ch.ensure_subscription(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(3, 5)).await.unwrap();
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 3);
    assert_eq!(
        ch.subscriptions(&broker).await.unwrap(),
        vec![trigger.clone()]
    );
    // Ensuring a known cursor leaves it where it is.
    ch.ensure_subscription(&broker, &trigger).await.unwrap();
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 3);

    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    let got = take(&mut sub, 3).await;
    assert_eq!(ids(&got), id_range(3, 5));
    assert_idle(&mut sub).await;
    got.into_iter().for_each(|d| d.ack.ack());
    assert!(matches!(
        ch.ensure_subscription(&key("nobody"), &trigger).await,
        Err(ChannelError::UnknownLog { .. })
    ));
}

async fn unacked_events_are_redelivered_after_resubscribe(b: Box<dyn Backend>) {
    let (ch, broker, trigger) = (b.channel(), key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(1, 5)).await.unwrap();
    let mut got = take(&mut sub, 5).await.into_iter();
    got.next().unwrap().ack.ack();
    got.next().unwrap().ack.ack();
    drop(got); // 3, 4 and 5 are dropped without an ack
    drop(sub);
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    assert_eq!(ids(&take(&mut sub, 3).await), id_range(3, 5));
    assert_idle(&mut sub).await;
}

async fn out_of_order_acks_commit_below_the_lowest_unacked(b: Box<dyn Backend>) {
    let (ch, broker, trigger) = (b.channel(), key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(1, 5)).await.unwrap();
    let mut got: Vec<_> = take(&mut sub, 5).await.into_iter().map(Some).collect();
    let mut ack = |i: usize| got[i - 1].take().unwrap().ack.ack();
    for i in [5, 2, 4] {
        ack(i);
    }
    // Per-event acknowledgements (JetStream) keep 2, 4 and 5 done; a cursor stays below 1.
    let per_event = b.acks_each_event();
    assert_eq!(
        ch.backlog(&broker, &trigger).await.unwrap(),
        if per_event { 2 } else { 5 },
        "1 is unacked"
    );
    ack(1);
    assert_eq!(
        ch.backlog(&broker, &trigger).await.unwrap(),
        if per_event { 1 } else { 3 },
        "3 is unacked"
    );
    drop(got); // 3 is never acked
    drop(sub);
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    let again = if per_event {
        id_range(3, 3)
    } else {
        id_range(3, 5)
    };
    assert_eq!(
        ids(&take(&mut sub, again.len()).await),
        again,
        "everything above the lowest unacked (or, per event, what is unacked) is delivered again"
    );
    assert_idle(&mut sub).await;
}

async fn acked_cursor_survives_reopen(mut b: Box<dyn Backend>) {
    let (broker, trigger) = (key("b"), key("t"));
    let ch = b.channel();
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(1, 6)).await.unwrap();
    let got = take(&mut sub, 6).await;
    got.into_iter().take(4).for_each(|d| d.ack.ack());
    drop((sub, ch));
    b.reopen().await;
    let ch = b.channel();
    assert_eq!(ch.logs().await.unwrap(), vec![broker.clone()]);
    assert_eq!(
        ch.subscriptions(&broker).await.unwrap(),
        vec![trigger.clone()]
    );
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 2);
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    assert_eq!(ids(&take(&mut sub, 2).await), id_range(5, 6));
    ch.append(&broker, vec![event(7)]).await.unwrap();
    assert_eq!(ids(&take(&mut sub, 1).await), id_range(7, 7));
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 3);
}

async fn numbering_continues_after_retention_and_reopen(mut b: Box<dyn Backend>) {
    let (broker, trigger) = (key("b"), key("t"));
    let ch = b.channel();
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(1, 3)).await.unwrap();
    take(&mut sub, 3)
        .await
        .into_iter()
        .for_each(|d| d.ack.ack());
    b.compact().await;
    if b.deletes_consumed_events() {
        assert_eq!(b.stored_events(&broker).await, 0);
    }
    drop((sub, ch));
    b.reopen().await;
    let ch = b.channel();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    // Were numbering to restart at 1, the cursor (at 3) would hide these events.
    ch.append(&broker, events(4, 5)).await.unwrap();
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 2);
    assert_eq!(ids(&take(&mut sub, 2).await), id_range(4, 5));
}

async fn retention_keeps_what_a_cursor_has_not_passed(b: Box<dyn Backend>) {
    let (ch, broker, fast, slow) = (b.channel(), key("b"), key("fast"), key("slow"));
    ch.ensure_log(&broker).await.unwrap();
    let mut quick = ch.subscribe(&broker, &fast).await.unwrap();
    let mut lagging = ch.subscribe(&broker, &slow).await.unwrap();
    ch.append(&broker, events(1, 10)).await.unwrap();
    take(&mut quick, 10)
        .await
        .into_iter()
        .for_each(|d| d.ack.ack());
    let got = take(&mut lagging, 10).await;
    for (i, d) in got.into_iter().enumerate() {
        if i < 4 || i == 5 {
            d.ack.ack(); // 1..=4 and 6; 5 stays unacked
        }
    }
    b.compact().await;
    // Per-event acknowledgements (JetStream) release 6 as well.
    let kept: Vec<_> = if b.acks_each_event() {
        [5, 7, 8, 9, 10].map(|i| format!("e{i}")).into()
    } else {
        id_range(5, 10)
    };
    let stored = b.stored_events(&broker).await;
    if b.deletes_consumed_events() {
        assert_eq!(stored, kept.len() as u64, "5..=10 are not passed by `slow`");
    } else {
        assert!(
            stored >= kept.len() as u64,
            "5..=10 are not passed by `slow`"
        );
    }
    drop(lagging);
    let mut lagging = ch.subscribe(&broker, &slow).await.unwrap();
    assert_eq!(ids(&take(&mut lagging, kept.len()).await), kept);
    drop(lagging);
    ch.delete_subscription(&broker, &slow).await.unwrap();
    b.compact().await;
    if b.deletes_consumed_events() {
        assert_eq!(
            b.stored_events(&broker).await,
            0,
            "`fast` passed everything"
        );
    }

    let lonely = key("no-triggers");
    ch.ensure_log(&lonely).await.unwrap();
    ch.append(&lonely, events(1, 3)).await.unwrap();
    b.compact().await;
    if b.deletes_consumed_events() {
        assert_eq!(
            b.stored_events(&lonely).await,
            0,
            "a log without cursors keeps nothing"
        );
    }
    let mut sub = ch.subscribe(&lonely, &key("t")).await.unwrap();
    ch.append(&lonely, vec![event(4)]).await.unwrap();
    assert_eq!(ids(&take(&mut sub, 1).await), id_range(4, 4));
}

async fn unknown_broker_is_an_error(b: Box<dyn Backend>) {
    let (ch, nobody) = (b.channel(), key("nobody"));
    let err = ch.append(&nobody, events(1, 1)).await.unwrap_err();
    assert!(matches!(&err, ChannelError::UnknownLog { broker } if *broker == nobody));
    assert!(!err.is_retriable());
    assert!(matches!(
        ch.subscribe(&nobody, &key("t")).await.err(),
        Some(ChannelError::UnknownLog { .. })
    ));
    assert!(matches!(
        ch.backlog(&nobody, &key("t")).await,
        Err(ChannelError::UnknownLog { .. })
    ));
    assert!(matches!(
        ch.subscriptions(&nobody).await,
        Err(ChannelError::UnknownLog { .. })
    ));
    ch.delete_log(&nobody).await.unwrap();
    ch.delete_subscription(&nobody, &key("t")).await.unwrap();
}

async fn delete_log_ends_subscriptions(b: Box<dyn Backend>) {
    let (ch, broker, trigger) = (b.channel(), key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    ch.ensure_log(&key("other")).await.unwrap();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(1, 2)).await.unwrap();
    take(&mut sub, 2)
        .await
        .into_iter()
        .for_each(|d| d.ack.ack());
    let waiting = tokio::spawn(async move { sub.next(10).await.map(|d| d.len()) });
    ch.delete_log(&broker).await.unwrap();
    let ended = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(
        matches!(ended, Err(ChannelError::UnknownLog { .. })),
        "{ended:?}"
    );
    assert_eq!(ch.logs().await.unwrap(), vec![key("other")]);
    assert!(matches!(
        ch.append(&broker, events(3, 3)).await,
        Err(ChannelError::UnknownLog { .. })
    ));

    // A re-created log is a new, empty one: no cursors, new triggers start at its end.
    ch.ensure_log(&broker).await.unwrap();
    assert!(ch.subscriptions(&broker).await.unwrap().is_empty());
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 0);
    ch.append(&broker, events(10, 11)).await.unwrap();
    assert_eq!(ids(&take(&mut sub, 2).await), id_range(10, 11));
}

async fn listing_and_deleting_subscriptions(b: Box<dyn Backend>) {
    let ch = b.channel();
    assert!(ch.logs().await.unwrap().is_empty());
    let broker = key("b");
    ch.ensure_log(&key("z")).await.unwrap();
    ch.ensure_log(&broker).await.unwrap();
    assert_eq!(ch.logs().await.unwrap(), vec![broker.clone(), key("z")]);
    let mut gone = ch.subscribe(&broker, &key("gone")).await.unwrap();
    let _kept = ch.subscribe(&broker, &key("kept")).await.unwrap();
    assert_eq!(
        ch.subscriptions(&broker).await.unwrap(),
        vec![key("gone"), key("kept")]
    );
    ch.append(&broker, events(1, 2)).await.unwrap();
    take(&mut gone, 1).await; // handed out, never acked
    drop(gone);
    ch.delete_subscription(&broker, &key("gone")).await.unwrap();
    assert_eq!(ch.subscriptions(&broker).await.unwrap(), vec![key("kept")]);
    // Re-created, the trigger starts at the end like a new one.
    let mut again = ch.subscribe(&broker, &key("gone")).await.unwrap();
    assert_eq!(ch.backlog(&broker, &key("gone")).await.unwrap(), 0);
    assert_idle(&mut again).await;
}

async fn next_waits_then_wakes_on_append(b: Box<dyn Backend>) {
    let (ch, broker) = (b.channel(), key("b"));
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &key("t")).await.unwrap();
    let mut waiting = tokio::spawn(async move { sub.next(10).await.map(|d| ids(&d)) });
    assert!(
        tokio::time::timeout(IDLE, &mut waiting).await.is_err(),
        "next returned with nothing appended"
    );
    ch.append(&broker, vec![event(1)]).await.unwrap();
    let woke = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(woke.unwrap(), id_range(1, 1));
}

async fn group_commit_stores_every_concurrent_append_once(b: Box<dyn Backend>) {
    let (ch, broker) = (b.channel(), key("b"));
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &key("t")).await.unwrap();
    let appends: Vec<_> = (1..=200)
        .map(|i| {
            let (ch, broker) = (Arc::clone(&ch), broker.clone());
            // Every tenth request carries three events.
            let batch = if i % 10 == 0 {
                vec![event(i), event(1000 + i), event(2000 + i)]
            } else {
                vec![event(i)]
            };
            tokio::spawn(async move { ch.append(&broker, batch).await })
        })
        .collect();
    for append in appends {
        append.await.unwrap().unwrap();
    }
    let total = 200 + 2 * 20;
    let got = take(&mut sub, total).await;
    let unique: HashSet<_> = ids(&got).into_iter().collect();
    assert_eq!(unique.len(), total, "every event exactly once");
    for i in (10..=200).step_by(10) {
        let pos = |id: String| got.iter().position(|d| d.event.id() == id).unwrap();
        let (a, b, c) = (
            pos(format!("e{i}")),
            pos(format!("e{}", 1000 + i)),
            pos(format!("e{}", 2000 + i)),
        );
        assert!(
            a + 1 == b && b + 1 == c,
            "a request's events stay together, in order"
        );
    }
    got.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(ch.backlog(&broker, &key("t")).await.unwrap(), 0);
    assert_idle(&mut sub).await;
}

async fn park_keeps_events_for_the_operator(mut b: Box<dyn Backend>) {
    let (broker, trigger) = (key("b"), key("t"));
    let ch = b.channel();
    ch.ensure_log(&broker).await.unwrap();
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    ch.park(
        &broker,
        &trigger,
        &event(1),
        "dead-letter sink answered 503",
    )
    .await
    .unwrap();
    ch.park(&broker, &trigger, &event(2), "dead-letter sink unreachable")
        .await
        .unwrap();
    drop(ch);
    b.reopen().await;
    let ch = b.channel();
    ch.delete_log(&broker).await.unwrap(); // parked events outlive the log
    let parked = ch.parked(&broker).await.unwrap();
    assert_eq!(parked.len(), 2);
    assert_eq!(parked[0].trigger, trigger);
    assert_eq!(parked[0].reason, "dead-letter sink answered 503");
    assert_eq!(parked[0].event, event(1));
    assert_eq!(parked[1].event, event(2));
    assert!(parked[0].parked_at >= before);
    assert!(ch.parked(&key("other")).await.unwrap().is_empty());
}

async fn order_is_kept_per_partition_key(b: Box<dyn Backend>) {
    let (ch, broker, trigger) = (b.channel(), key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    // 60 events over four keys, interleaved irregularly, in requests of 1 to 5 events.
    let sent: Vec<_> = (1..=60)
        .map(|i| keyed_event(i, ["a", "b", "c", "d"][(i * i + i / 7) % 4]))
        .collect();
    let mut rest = sent.as_slice();
    for size in (1..=5).cycle() {
        if rest.is_empty() {
            break;
        }
        let (request, tail) = rest.split_at(size.min(rest.len()));
        ch.append(&broker, request.to_vec()).await.unwrap();
        rest = tail;
    }
    let expected = ids_per_key(&sent);
    let got = take(&mut sub, sent.len()).await;
    assert_eq!(
        ids_per_key(got.iter().map(|d| &d.event)),
        expected,
        "each key's events arrive once, in append order"
    );
    // The first ten are acknowledged; what is delivered again keeps each key's order too.
    let mut got = got.into_iter();
    // The first ten received: with several partitions, not necessarily the first ten sent.
    let first: Vec<_> = got.by_ref().take(10).collect();
    let acked: HashSet<_> = first.iter().map(|d| d.event.id().to_owned()).collect();
    first.into_iter().for_each(|d| d.ack.ack());
    drop(got);
    drop(sub);
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
    let again = take(&mut sub, sent.len() - 10).await;
    let mut expected = expected;
    expected
        .values_mut()
        .for_each(|lane| lane.retain(|id| !acked.contains(id)));
    assert_eq!(ids_per_key(again.iter().map(|d| &d.event)), expected);
    assert_idle(&mut sub).await;
}

/// Two processes subscribe to the same trigger: together they receive every event exactly
/// once in normal operation (everything acknowledged, nobody crashes), and when one leaves,
/// the other carries on alone without losing what follows. Skipped where a backend cannot
/// share a store between processes ([`Backend::open_second`]).
async fn two_consumers_share_one_trigger(b: Box<dyn Backend>) {
    use std::sync::Mutex;
    use std::time::Duration;

    /// Generous: a backend may need to rebalance when a consumer joins or leaves.
    const DEADLINE: Duration = Duration::from_secs(30);

    /// Takes and acknowledges events until `seen` holds `total`, recording each id.
    async fn consume(
        mut sub: Box<dyn weft_channels::Subscription>,
        seen: Arc<Mutex<Vec<String>>>,
        total: usize,
    ) -> (Box<dyn weft_channels::Subscription>, usize) {
        let mut mine = 0;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while seen.lock().unwrap().len() < total {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {total} events arrived",
                seen.lock().unwrap().len()
            );
            // Cancelling `next` hands nothing out, so polling with a timeout loses nothing.
            let Ok(batch) = tokio::time::timeout(IDLE, sub.next(7)).await else {
                continue;
            };
            let batch = batch.unwrap();
            mine += batch.len();
            seen.lock().unwrap().extend(ids(&batch));
            batch.into_iter().for_each(|d| d.ack.ack());
        }
        (sub, mine)
    }

    async fn backlog_drains(ch: &Arc<dyn weft_channels::Channel>) {
        let (broker, trigger) = (key("b"), key("t"));
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let backlog = ch.backlog(&broker, &trigger).await.unwrap();
            if backlog == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "backlog stays at {backlog}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let Some(other) = b.open_second().await else {
        return;
    };
    let (ch, broker, trigger) = (b.channel(), key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    other.ensure_log(&broker).await.unwrap();
    let first = ch.subscribe(&broker, &trigger).await.unwrap();
    let second = other.subscribe(&broker, &trigger).await.unwrap();

    // Both processes publish at once, 10 events per request: e1..e200 and e201..e400.
    const TOTAL: usize = 400;
    let publish = |ch: &Arc<dyn weft_channels::Channel>, from: usize| {
        let (ch, broker) = (Arc::clone(ch), broker.clone());
        tokio::spawn(async move {
            for start in (from..from + TOTAL / 2).step_by(10) {
                ch.append(&broker, events(start, start + 9)).await.unwrap();
            }
        })
    };
    let publishers = [publish(&ch, 1), publish(&other, TOTAL / 2 + 1)];
    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumers = [first, second].map(|sub| tokio::spawn(consume(sub, seen.clone(), TOTAL)));
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let mut subs = Vec::new();
    for consumer in consumers {
        let (sub, mine) = consumer.await.unwrap();
        eprintln!("one consumer received {mine} of {TOTAL} events");
        subs.push(sub);
    }
    let got = std::mem::take(&mut *seen.lock().unwrap());
    let unique: HashSet<_> = got.iter().cloned().collect();
    assert_eq!(
        unique,
        id_range(1, TOTAL).into_iter().collect::<HashSet<_>>()
    );
    assert_eq!(got.len(), TOTAL, "no event is delivered twice");
    backlog_drains(&ch).await;
    backlog_drains(&other).await;

    // The first consumer leaves (everything it took is acknowledged); the second alone
    // receives what follows.
    let second = subs.pop().unwrap();
    drop(subs);
    ch.append(&broker, events(TOTAL + 1, TOTAL + 50))
        .await
        .unwrap();
    let (_second, _) = consume(second, seen.clone(), 50).await;
    let got = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        got.iter().cloned().collect::<HashSet<_>>(),
        id_range(TOTAL + 1, TOTAL + 50)
            .into_iter()
            .collect::<HashSet<_>>()
    );
    assert_eq!(got.len(), 50, "no event is delivered twice");
    backlog_drains(&other).await;
}
