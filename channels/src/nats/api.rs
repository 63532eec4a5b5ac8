//! The JetStream API requests the channel makes, with one error classification: the server
//! could not be asked (or did not answer) → [`ChannelError::Unavailable`]; the server
//! answered with an error → the JetStream error, for the caller to interpret.

use async_nats::jetstream::response::Response;
use async_nats::jetstream::{self, consumer, stream};
use async_nats::jetstream::{Error as JsError, ErrorCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::ChannelError;

/// The outcome of a request the server answered.
type Answer<T> = Result<T, JsError>;

/// A stream, a consumer, or neither.
pub(super) enum Lookup<T> {
    Found(T),
    /// The stream exists, the consumer does not.
    NoConsumer,
    NoStream,
}

/// JetStream's management API.
#[derive(Clone, Debug)]
pub(super) struct Api {
    pub(super) js: jetstream::Context,
}

pub(super) fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> ChannelError {
    ChannelError::Unavailable {
        source: Box::new(source),
    }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct Page<T> {
    total: usize,
    #[serde(default, alias = "streams", alias = "consumers")]
    items: Option<Vec<T>>,
}

#[derive(Deserialize)]
struct Success {
    #[allow(dead_code)] // only its presence matters
    success: bool,
}

fn is(error: &JsError, code: ErrorCode) -> bool {
    error.error_code() == code
}

impl Api {
    async fn call<T: DeserializeOwned>(
        &self,
        subject: String,
        payload: &serde_json::Value,
    ) -> Result<Answer<T>, ChannelError> {
        match self
            .js
            .request(subject, payload)
            .await
            .map_err(unavailable)?
        {
            Response::Ok(value) => Ok(Ok(value)),
            Response::Err { error } => Ok(Err(error)),
        }
    }

    /// Checks that JetStream is enabled for the account.
    pub(super) async fn check_account(&self) -> Result<(), ChannelError> {
        self.call::<serde_json::Value>("INFO".to_owned(), &json!({}))
            .await?
            .map(drop)
            .map_err(unavailable)
    }

    /// The stream's state, or `None` if it does not exist.
    pub(super) async fn stream_info(
        &self,
        name: &str,
    ) -> Result<Option<stream::Info>, ChannelError> {
        match self.call(format!("STREAM.INFO.{name}"), &json!({})).await? {
            Ok(info) => Ok(Some(info)),
            Err(e) if is(&e, ErrorCode::STREAM_NOT_FOUND) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Creates the stream; a stream of that name that already exists is left as it is.
    pub(super) async fn create_stream(&self, config: &stream::Config) -> Result<(), ChannelError> {
        let payload = serde_json::to_value(config).map_err(unavailable)?;
        match self
            .call::<stream::Info>(format!("STREAM.CREATE.{}", config.name), &payload)
            .await?
        {
            Ok(_) => Ok(()),
            Err(e) if is(&e, ErrorCode::STREAM_NAME_EXIST) => {
                tracing::info!(stream = %config.name, "stream exists with other settings; keeping them");
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes the stream; returns whether it existed.
    pub(super) async fn delete_stream(&self, name: &str) -> Result<bool, ChannelError> {
        match self
            .call::<Success>(format!("STREAM.DELETE.{name}"), &json!({}))
            .await?
        {
            Ok(_) => Ok(true),
            Err(e) if is(&e, ErrorCode::STREAM_NOT_FOUND) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Every stream on the server.
    pub(super) async fn streams(&self) -> Result<Vec<stream::Info>, ChannelError> {
        self.pages("STREAM.LIST".to_owned())
            .await?
            .map_err(unavailable)
    }

    /// Creates (or, where only updatable settings differ, updates) a durable consumer.
    pub(super) async fn create_consumer(
        &self,
        stream: &str,
        config: &consumer::pull::Config,
    ) -> Result<Lookup<()>, ChannelError> {
        let name = config.durable_name.as_deref().unwrap_or_default();
        let payload = json!({"stream_name": stream, "config": config});
        let subject = format!("CONSUMER.CREATE.{stream}.{name}");
        match self.call::<consumer::Info>(subject, &payload).await? {
            Ok(_) => Ok(Lookup::Found(())),
            Err(e) if is(&e, ErrorCode::STREAM_NOT_FOUND) => Ok(Lookup::NoStream),
            Err(e)
                if is(&e, ErrorCode::CONSUMER_NAME_EXIST)
                    || is(&e, ErrorCode::CONSUMER_ALREADY_EXISTS) =>
            {
                tracing::info!(%stream, consumer = name, error = %e, "consumer exists with other settings; keeping them");
                Ok(Lookup::Found(()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The consumer's state.
    pub(super) async fn consumer_info(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Lookup<consumer::Info>, ChannelError> {
        match self
            .call(format!("CONSUMER.INFO.{stream}.{name}"), &json!({}))
            .await?
        {
            Ok(info) => Ok(Lookup::Found(info)),
            Err(e) if is(&e, ErrorCode::STREAM_NOT_FOUND) => Ok(Lookup::NoStream),
            Err(e) if is(&e, ErrorCode::CONSUMER_NOT_FOUND) => Ok(Lookup::NoConsumer),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes the consumer; a consumer (or stream) that does not exist is not an error.
    pub(super) async fn delete_consumer(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<(), ChannelError> {
        match self
            .call::<Success>(format!("CONSUMER.DELETE.{stream}.{name}"), &json!({}))
            .await?
        {
            Ok(_) => Ok(()),
            Err(e)
                if is(&e, ErrorCode::STREAM_NOT_FOUND) || is(&e, ErrorCode::CONSUMER_NOT_FOUND) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The consumers on a stream, or `None` if the stream does not exist.
    pub(super) async fn consumers(
        &self,
        stream: &str,
    ) -> Result<Option<Vec<consumer::Info>>, ChannelError> {
        match self.pages(format!("CONSUMER.LIST.{stream}")).await? {
            Ok(consumers) => Ok(Some(consumers)),
            Err(e) if is(&e, ErrorCode::STREAM_NOT_FOUND) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Every item of a paged list.
    async fn pages<T: DeserializeOwned>(
        &self,
        subject: String,
    ) -> Result<Answer<Vec<T>>, ChannelError> {
        let mut all = Vec::new();
        loop {
            let page: Page<T> = match self
                .call(subject.clone(), &json!({"offset": all.len()}))
                .await?
            {
                Ok(page) => page,
                Err(e) => return Ok(Err(e)),
            };
            let items = page.items.unwrap_or_default();
            let done = items.is_empty() || all.len() + items.len() >= page.total;
            all.extend(items);
            if done {
                return Ok(Ok(all));
            }
        }
    }
}
