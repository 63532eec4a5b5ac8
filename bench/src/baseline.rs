//! The baselines every figure is a ratio to, measured in the same run on the same machine:
//!
//! - [`serve_http`]: a bare handler that reads the body and answers 202, storing nothing —
//!   the most that HTTP alone allows here (the ceiling for ingest).
//! - [`serve_forwarder`]: receives an event and POSTs it, headers and body unchanged, to a
//!   sink, answering 202 once the sink answered 2xx (502 otherwise) — a broker without
//!   storage (the ceiling for end-to-end delivery).
//!
//! Both are served by `weft bench baseline-http` / `baseline-forwarder` as processes of
//! their own, so that their CPU and memory are measured as Weft's are.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

use super::BenchError;

/// What a baseline process prints on stdout, followed by `HOST:PORT`, once it serves.
pub const LISTENING: &str = "weft bench baseline listening on http://";

async fn bind(addr: &str) -> Result<TcpListener, BenchError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BenchError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

fn local_addr(listener: &TcpListener, addr: &str) -> Result<SocketAddr, BenchError> {
    listener.local_addr().map_err(|source| BenchError::Bind {
        addr: addr.to_owned(),
        source,
    })
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

/// Serves the bare 202 handler on `addr` until `stop` completes; `on_ready` gets the bound
/// address first.
pub async fn serve_http(
    addr: &str,
    on_ready: impl FnOnce(SocketAddr),
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BenchError> {
    let listener = bind(addr).await?;
    on_ready(local_addr(&listener, addr)?);
    let app = Router::new().fallback(|_body: Bytes| async { status(StatusCode::ACCEPTED) });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|source| BenchError::Serve { source })
}

struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    sink: Uri,
}

/// Serves the stateless forwarder on `addr`, POSTing to `sink`, until `stop` completes;
/// `on_ready` gets the bound address first.
pub async fn serve_forwarder(
    addr: &str,
    sink: &str,
    on_ready: impl FnOnce(SocketAddr),
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BenchError> {
    let sink: Uri = sink.parse().map_err(|_| BenchError::Url {
        url: sink.to_owned(),
        reason: "not a URL".into(),
    })?;
    if sink.scheme_str() != Some("http") {
        return Err(BenchError::Url {
            url: sink.to_string(),
            reason: "only http:// sinks are supported".into(),
        });
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // A pool of keep-alive connections, one per concurrent forward, kept between requests.
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector);
    let listener = bind(addr).await?;
    on_ready(local_addr(&listener, addr)?);
    let app = Router::new()
        .fallback(forward)
        .with_state(Arc::new(Forwarder { client, sink }));
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|source| BenchError::Serve { source })
}

async fn forward(State(forwarder): State<Arc<Forwarder>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut out = http::Request::new(Full::new(body));
    *out.method_mut() = http::Method::POST;
    *out.uri_mut() = forwarder.sink.clone();
    *out.headers_mut() = parts.headers;
    // The Host header named this forwarder; the client sets the sink's from the URI.
    out.headers_mut().remove(http::header::HOST);
    let answered = async {
        let response = forwarder.client.request(out).await.ok()?;
        let ok = response.status().is_success();
        // Reading the body to its end returns the connection to the pool.
        response.into_body().collect().await.ok()?;
        Some(ok)
    };
    match answered.await {
        Some(true) => status(StatusCode::ACCEPTED),
        _ => status(StatusCode::BAD_GATEWAY),
    }
}
