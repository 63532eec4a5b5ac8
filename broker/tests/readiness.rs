//! `/readyz` follows whether the channel can store: 503 with a reason from an append that
//! fails because storage is down (a disk full, a server gone), 200 again once an append
//! succeeds or the channel's probe does. The channel is the in-memory one behind a switch
//! that makes its writes fail as a full disk would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use weft_broker::ingress::STORAGE_PROBE_INTERVAL;
use weft_broker::{DataPlane, DataPlaneOptions};
use weft_channels::memory::MemoryChannel;
use weft_channels::{Channel, ChannelError, ParkedEvent, Subscription};
use weft_config::event::http::encode_binary;
use weft_config::{Event, ObjectKey};
use weft_e2e::event;

/// The memory channel, except that while `full` is set every write and probe fails with
/// the error a full disk gives.
#[derive(Default)]
struct FillableChannel {
    inner: MemoryChannel,
    full: AtomicBool,
}

impl FillableChannel {
    fn check(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        if self.full.load(Ordering::SeqCst) {
            let disk = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk is full");
            return Err(ChannelError::Append {
                broker: broker.clone(),
                source: Box::new(disk),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Channel for FillableChannel {
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.inner.ensure_log(broker).await
    }
    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.inner.delete_log(broker).await
    }
    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError> {
        self.inner.logs().await
    }
    async fn append(&self, broker: &ObjectKey, events: Vec<Event>) -> Result<(), ChannelError> {
        self.check(broker)?;
        self.inner.append(broker, events).await
    }
    async fn subscribe(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Box<dyn Subscription>, ChannelError> {
        self.inner.subscribe(broker, trigger).await
    }
    async fn delete_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.inner.delete_subscription(broker, trigger).await
    }
    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError> {
        self.inner.subscriptions(broker).await
    }
    async fn backlog(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<u64, ChannelError> {
        self.inner.backlog(broker, trigger).await
    }
    async fn park(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
        event: &Event,
        reason: &str,
    ) -> Result<(), ChannelError> {
        self.inner.park(broker, trigger, event, reason).await
    }
    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        self.inner.parked(broker).await
    }
    async fn probe(&self) -> Result<(), ChannelError> {
        self.check(&ObjectKey::new("probe", "probe"))
    }
}

/// A data plane with broker `default/default`, ready, and its router.
async fn ready_dataplane() -> (Arc<FillableChannel>, Router) {
    let channel = Arc::new(FillableChannel::default());
    let dataplane = DataPlane::new(channel.clone(), DataPlaneOptions::default());
    dataplane
        .apply_broker(&ObjectKey::new("default", "default"))
        .await
        .unwrap();
    dataplane.set_ready(true);
    (channel, dataplane.router())
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    answer(app, request).await
}

async fn send(app: &Router, id: &str) -> StatusCode {
    let event = event("com.example.test").id(id).build();
    let mut headers = http::HeaderMap::new();
    let body = encode_binary(&event, &mut headers);
    let mut request = Request::post("/default/default")
        .body(Body::from(body))
        .unwrap();
    *request.headers_mut() = headers;
    answer(app, request).await.0
}

async fn answer(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn readyz_is_503_while_appends_fail_and_200_after_one_succeeds() {
    let (channel, app) = ready_dataplane().await;
    assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);

    channel.full.store(true, Ordering::SeqCst);
    assert_eq!(send(&app, "1").await, StatusCode::SERVICE_UNAVAILABLE);
    let (status, reason) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        reason.contains("cannot store") && reason.contains("disk is full"),
        "the reason names the failure: {reason:?}"
    );

    channel.full.store(false, Ordering::SeqCst);
    assert_eq!(send(&app, "2").await, StatusCode::ACCEPTED);
    assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn readyz_is_200_again_once_the_channels_probe_succeeds_without_traffic() {
    let (channel, app) = ready_dataplane().await;
    channel.full.store(true, Ordering::SeqCst);
    assert_eq!(send(&app, "1").await, StatusCode::SERVICE_UNAVAILABLE);

    // Still full at the next probe: still not ready.
    tokio::time::sleep(STORAGE_PROBE_INTERVAL * 2).await;
    assert_eq!(
        get(&app, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    channel.full.store(false, Ordering::SeqCst);
    tokio::time::sleep(STORAGE_PROBE_INTERVAL + std::time::Duration::from_millis(10)).await;
    assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
}
