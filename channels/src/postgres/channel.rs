//! The [`Channel`] implementation of [`PostgresChannel`]: each call a statement or a short
//! transaction on the durable pool, appends through the writer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;
use weft_config::event::codec;
use weft_config::{Event, ObjectKey};

use super::consumer::PostgresSubscription;
use super::progress::Message;
use super::retry;
use super::shared::lock;
use super::{BACKEND, NOTIFY_NEW, PostgresChannel};
use crate::sql::{ParkedRow, parked_event};
use crate::{Channel, ChannelError, ParkedEvent, Subscription, telemetry};

#[async_trait]
impl Channel for PostgresChannel {
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        retry::query(|| async move {
            sqlx::query(include_str!("sql/insert_broker.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .execute(pool)
                .await
        })
        .await?;
        // Another process may delete it in between; then appends report the log unknown.
        self.shared.lookup(broker).await.map(drop)
    }

    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let Some(id) = self.shared.lookup(broker).await? else {
            return Ok(());
        };
        let pool = &self.shared.pool;
        retry::query(|| async move {
            let mut tx = pool.begin().await?;
            // The broker first: that waits for its appenders, and stops new ones.
            sqlx::query(include_str!("sql/delete_broker.sql"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(include_str!("sql/delete_log_events.sql"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(include_str!("sql/notify_logs.sql"))
                .bind([id])
                .bind(NOTIFY_NEW)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
        .await?;
        self.shared.forget_log(broker, id);
        Ok(())
    }

    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows: Vec<(String, String)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/select_brokers.sql"))
                .fetch_all(pool)
                .await
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|(namespace, name)| ObjectKey::new(namespace, name))
            .collect())
    }

    async fn append(&self, broker: &ObjectKey, events: Vec<Event>) -> Result<(), ChannelError> {
        let result = async {
            self.shared.check_open()?;
            let unknown = || ChannelError::UnknownLog {
                broker: broker.clone(),
            };
            let id = self.shared.broker_id(broker).await?.ok_or_else(unknown)?;
            if events.is_empty() {
                return Ok(());
            }
            let bodies: Vec<Bytes> = events.iter().map(codec::encode).collect();
            match self.send(broker, id, bodies.clone()).await {
                // The cached id may name a log deleted (and perhaps re-created) elsewhere.
                Err(ChannelError::UnknownLog { .. }) => match self.shared.lookup(broker).await? {
                    Some(again) if again != id => self.send(broker, again, bodies).await,
                    _ => Err(unknown()),
                },
                result => result,
            }
        }
        .await;
        if let Err(error) = &result
            && !matches!(error, ChannelError::Append { .. })
        {
            // The writer counts the failures of group commits itself.
            telemetry::append_failed(BACKEND, error);
        }
        result
    }

    async fn subscribe(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Box<dyn Subscription>, ChannelError> {
        let id = self.cursor(broker, trigger).await?;
        Ok(Box::new(PostgresSubscription::new(
            Arc::clone(&self.shared),
            &self.consumers,
            broker.clone(),
            id,
            trigger.clone(),
        )))
    }

    async fn ensure_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.cursor(broker, trigger).await.map(drop)
    }

    async fn delete_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        retry::query(|| async move {
            sqlx::query(include_str!("sql/delete_cursor.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .execute(pool)
                .await
        })
        .await?;
        Ok(())
    }

    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows: Vec<(i64, Option<String>, Option<String>)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/select_cursors.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_all(pool)
                .await
        })
        .await?;
        if rows.is_empty() {
            return Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            });
        }
        Ok(rows
            .into_iter()
            .filter_map(|(_, namespace, name)| Some(ObjectKey::new(namespace?, name?)))
            .collect())
    }

    async fn backlog(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<u64, ChannelError> {
        self.shared.check_open()?;
        // This process's acknowledgements count at once, not only after the next write.
        self.shared.flush(false).await?;
        let pool = &self.shared.pool;
        let row: Option<(i64, Option<i64>)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/backlog.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .fetch_optional(pool)
                .await
        })
        .await?;
        match row {
            None => Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            }),
            Some((_, None)) => Ok(0),
            Some((head, Some(seq))) => Ok(head.saturating_sub(seq).max(0) as u64),
        }
    }

    async fn park(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
        event: &Event,
        reason: &str,
    ) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let body = codec::encode(event);
        let body = body.as_ref();
        // Tried again on a broken connection: at worst the event is parked twice.
        retry::query(|| async move {
            sqlx::query(include_str!("sql/insert_parked.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .bind(reason)
                .bind(body)
                .execute(pool)
                .await
        })
        .await?;
        telemetry::parked(BACKEND);
        Ok(())
    }

    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows: Vec<ParkedRow> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/select_parked.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_all(pool)
                .await
        })
        .await?;
        rows.into_iter()
            .map(|row| parked_event(broker, row))
            .collect()
    }

    async fn close(&self) -> Result<(), ChannelError> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Appends already queued are still written and answered.
        drop(lock(&self.appends).take());
        let writer = lock(&self.writer).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        // The keeper writes the last progress and releases every lease still held.
        let (reply, done) = oneshot::channel();
        if self.shared.keeper.send(Message::Close(reply)).is_ok() {
            let _ = done.await;
        }
        let keeper = lock(&self.keeper).take();
        if let Some(keeper) = keeper {
            let _ = keeper.await;
        }
        self.listener.abort();
        // Dropping the wake senders ends waiting subscriptions, which see `closed`.
        lock(&self.shared.wakes).clear();
        self.shared.pool.close().await;
        self.shared.bookkeeping.close().await;
        Ok(())
    }
}
