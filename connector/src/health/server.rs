//! The `[health]` listener: loopback only (checked at config load), `GET /healthz` and
//! `GET /readyz`, JSON; anything else 404 or 405. Connections are few and short: capped in
//! number and in time, request bodies never read.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use super::Health;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
/// Longest a connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `listen` (failing the start when it cannot) and serves in the background.
pub async fn start(listen: SocketAddr, health: Arc<Health>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on [health] listen = \"{listen}\" (in use? pick another port)")
        })?;
    tracing::info!(%listen, "health listener: GET /healthz, GET /readyz");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("health listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let health = health.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let health = health.clone();
                    async move { Ok::<_, Infallible>(answer(&req, &health)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
                drop(permit);
            });
        }
    });
    Ok(())
}

/// The answer to one request.
pub fn answer<B>(req: &Request<B>, health: &Health) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/healthz" && path != "/readyz" {
        return reply(StatusCode::NOT_FOUND, &json!({"error": "not found"}));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "method not allowed: use GET"}),
        );
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    if path == "/healthz" {
        return reply(StatusCode::OK, &json!({"status": "ok"}));
    }
    let (status, body) = health.readyz();
    reply(
        StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        &body,
    )
}

fn reply(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// Most of an answer [`ask`] reads.
const MAX_ANSWER: usize = 64 * 1024;

/// `GET path` (`/readyz` or `/healthz`) of the listener at `listen` (the running
/// connector's): whether it answered 200, and its body. For `underpass-connector health`.
pub async fn ask(listen: SocketAddr, path: &str) -> Result<(bool, String), String> {
    use http_body_util::BodyExt;
    let url: http::Uri = format!("http://{listen}{path}")
        .parse()
        .map_err(|e| format!("bad address {listen}: {e}"))?;
    let exchange = async {
        let answer =
            crate::http_client::get_once(&url, "application/json", "underpass-connector-health")
                .await
                .map_err(|e| format!("{url}: {e} (is the connector running?)"))?;
        let ready = answer.status() == StatusCode::OK;
        let body = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("{url}: the answer was cut short: {e}"))?
            .to_bytes();
        Ok((ready, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(CONNECTION_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{url}: no answer within {CONNECTION_TIMEOUT:?}"))?
}
