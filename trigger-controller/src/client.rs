//! `weft send` and `weft get`: small clients for a broker and for a running instance.

use std::fmt::Write as _;

use bytes::Bytes;
use http::HeaderMap;
use weft_config::event::http as binding;
use weft_config::redact::redact;
use weft_config::{AttributeValue, Event, ObjectKey};

use crate::ControllerError;
use crate::status::{BrokerStatus, Purged, TriggerStatus};

/// The content mode `weft send` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendMode {
    /// `ce-` headers.
    Binary,
    /// One JSON document.
    Structured,
}

/// What `weft send` posts.
#[derive(Clone, Debug)]
pub struct SendRequest {
    /// The broker URL.
    pub url: String,
    /// `type`.
    pub ty: String,
    /// `source`.
    pub source: String,
    /// `id`; a random UUID when absent.
    pub id: Option<String>,
    /// JSON data.
    pub data: Option<String>,
    /// Extensions as `name=value` pairs.
    pub extensions: Vec<(String, String)>,
    /// The content mode.
    pub mode: SendMode,
}

/// Posts one event and returns the response status and body.
pub async fn send(request: &SendRequest) -> Result<(reqwest::StatusCode, String), ControllerError> {
    let invalid = |reason: String| ControllerError::InvalidArgument {
        what: "event",
        reason,
    };
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut event = Event::new(id, request.source.clone(), request.ty.clone())
        .map_err(|e| invalid(e.to_string()))?;
    for (name, value) in &request.extensions {
        event
            .set_extension(name.clone(), AttributeValue::String(value.clone()))
            .map_err(|e| invalid(e.to_string()))?;
    }
    if let Some(data) = &request.data {
        serde_json::from_str::<serde::de::IgnoredAny>(data)
            .map_err(|e| invalid(format!("--data is not JSON: {e}")))?;
        event
            .set_datacontenttype(Some("application/json".into()))
            .map_err(|e| invalid(e.to_string()))?;
        event.set_data(Some(Bytes::from(data.clone())));
    }
    let client = reqwest::Client::new();
    let builder = match request.mode {
        SendMode::Binary => {
            let mut headers = HeaderMap::new();
            let body = binding::encode_binary(&event, &mut headers);
            client.post(&request.url).headers(headers).body(body)
        }
        SendMode::Structured => client
            .post(&request.url)
            .header(http::header::CONTENT_TYPE, binding::STRUCTURED_JSON)
            .body(binding::encode_structured(&event)),
    };
    let http_error = |source: reqwest::Error| ControllerError::Http {
        url: redact(&request.url),
        source: source.without_url(),
    };
    let response = builder.send().await.map_err(http_error)?;
    let status = response.status();
    let body = response.text().await.map_err(http_error)?;
    Ok((status, body))
}

/// Fetches brokers from a running instance's admin address (`weft up --admin-addr`).
pub async fn get_brokers(addr: &str) -> Result<Vec<BrokerStatus>, ControllerError> {
    get_json(addr, "brokers").await
}

/// Fetches triggers from a running instance's admin address (`weft up --admin-addr`).
pub async fn get_triggers(addr: &str) -> Result<Vec<TriggerStatus>, ControllerError> {
    get_json(addr, "triggers").await
}

/// The admin API's URL for `path` on the instance at `addr` (`host:port` or a URL).
fn admin_url(addr: &str, path: &str) -> String {
    let base = if addr.contains("://") {
        addr.trim_end_matches('/').to_owned()
    } else {
        format!("http://{addr}")
    };
    format!("{base}/_weft/v1/{path}")
}

/// Deletes now the storage a deleted broker or trigger left behind with events in it
/// (`kind` is `brokers` or `triggers`). Answers what was deleted; an object with nothing
/// retained is an error that says so.
pub async fn purge(addr: &str, kind: &str, key: &ObjectKey) -> Result<Purged, ControllerError> {
    let url = admin_url(
        addr,
        &format!("retained/{kind}/{}/{}", key.namespace, key.name),
    );
    let http_error = |source: reqwest::Error| ControllerError::Http {
        url: redact(&url),
        source: source.without_url(),
    };
    let response = reqwest::Client::new()
        .delete(&url)
        .send()
        .await
        .map_err(http_error)?;
    if response.status() == reqwest::StatusCode::CONFLICT {
        let reason = response.text().await.map_err(http_error)?;
        return Err(ControllerError::InvalidArgument {
            what: "purge",
            reason: reason.trim_end().to_owned(),
        });
    }
    response
        .error_for_status()
        .map_err(http_error)?
        .json()
        .await
        .map_err(http_error)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    addr: &str,
    what: &str,
) -> Result<T, ControllerError> {
    let url = admin_url(addr, what);
    let http_error = |source: reqwest::Error| ControllerError::Http {
        url: redact(&url),
        source: source.without_url(),
    };
    reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .map_err(http_error)?
        .json()
        .await
        .map_err(http_error)
}

/// Renders brokers as a table.
pub fn brokers_table(brokers: &[BrokerStatus]) -> String {
    let rows = brokers.iter().map(|b| {
        vec![
            b.namespace.clone(),
            b.name.clone(),
            ready(b.ready),
            b.address.clone(),
            b.reason.clone().unwrap_or_default(),
        ]
    });
    table(&["NAMESPACE", "NAME", "READY", "URL", "REASON"], rows)
}

/// Renders triggers as a table.
pub fn triggers_table(triggers: &[TriggerStatus]) -> String {
    let rows = triggers.iter().map(|t| {
        vec![
            t.namespace.clone(),
            t.name.clone(),
            t.broker.clone(),
            ready(t.ready),
            t.subscriber.clone().unwrap_or_default(),
            t.backlog.to_string(),
            t.delivered.to_string(),
            t.dead_lettered.to_string(),
            t.in_flight_window.to_string(),
            t.reason.clone().unwrap_or_default(),
        ]
    });
    table(
        &[
            "NAMESPACE",
            "NAME",
            "BROKER",
            "READY",
            "SUBSCRIBER",
            "WAITING",
            "DELIVERED",
            "DEAD-LETTERED",
            "IN-FLIGHT",
            "REASON",
        ],
        rows,
    )
}

fn ready(r: bool) -> String {
    if r { "True" } else { "False" }.to_owned()
}

fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                let _ = write!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<w$}   ");
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
