//! The admin listener: `/healthz` (the process is up), `/readyz` (a tunnel is up and the edge
//! is not draining, so client traffic can be served; with the tasks and descriptors the edge
//! holds, and what an operator must look at) and `/metrics` ([`crate::metrics`]). Plain HTTP:
//! bind it to a private interface.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::certs::Problems;
use crate::drain::Drain;
use crate::metrics::{self, Metrics};
use crate::revocation::Revocations;
use crate::tunnels::registry::Registry;

/// What the admin endpoints read.
pub struct Admin {
    pub registry: Arc<Registry>,
    /// The tunnel listener's address (shown per tunnel).
    pub edge_addr: SocketAddr,
    pub revocations: Arc<Revocations>,
    pub problems: Arc<Problems>,
    /// The public key set of the identity assertions.
    pub jwks: serde_json::Value,
    pub drain: Drain,
    pub metrics: Arc<Metrics>,
}

/// Serves the admin endpoints.
pub async fn serve(listener: TcpListener, admin: Admin) {
    let admin = Arc::new(admin);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let answer = answer(&admin, &req);
                async move { Ok::<_, Infallible>(answer) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(admin: &Admin, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let registry = &admin.registry;
    let (status, body) = match req.uri().path() {
        "/metrics" => {
            return match admin.metrics.render() {
                Ok(text) => respond(StatusCode::OK, metrics::CONTENT_TYPE, text),
                Err(_) => respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "cannot encode the metrics\n".into(),
                ),
            };
        }
        "/.well-known/jwks.json" => (StatusCode::OK, admin.jwks.clone()),
        "/healthz" => (StatusCode::OK, serde_json::json!({"status": "ok"})),
        "/readyz" => {
            let draining = admin.drain.is_draining();
            let services = registry.service_counts();
            // Draining: not ready from the first moment, so a load balancer sends no new
            // clients here while the ones in flight finish.
            let ready = registry.tunnel_count() > 0 && !draining;
            let status = match (draining, ready) {
                (true, _) => "draining",
                (false, true) => "ready",
                (false, false) => "no connector online",
            };
            let held = underpass_shared::runtime_stats();
            (
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                serde_json::json!({
                    "status": status,
                    "tunnels": registry.tunnel_count(),
                    "sessions": registry.session_count(),
                    "services": services,
                    "connectors": connectors(registry, admin.edge_addr),
                    "problems": problems_of(&admin.revocations, &admin.problems),
                    "tasks": held.tasks,
                    "fds": held.fds,
                }),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found"}),
        ),
    };
    respond(status, "application/json", body.to_string())
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

/// One entry per live tunnel: which connector, over which transport, to which edge address,
/// since when (RFC 3339) and from where.
fn connectors(registry: &Registry, edge_addr: SocketAddr) -> Vec<serde_json::Value> {
    let mut tunnels = registry.tunnels();
    tunnels.sort_by_key(|t| t.id);
    tunnels
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.connector,
                "transport": t.conn.transport(),
                "edge_addr": edge_addr.to_string(),
                "since": humantime_serde::re::humantime::format_rfc3339_seconds(t.since).to_string(),
                "remote": t.conn.remote_addr().to_string(),
            })
        })
        .collect()
}

/// What an operator must look at although the edge serves: each entry names the component and
/// what is wrong with it.
fn problems_of(revocations: &Revocations, problems: &Problems) -> Vec<serde_json::Value> {
    revocations
        .failure()
        .map(|detail| ("revocation_list", detail))
        .into_iter()
        .chain(problems.list())
        .map(|(component, detail)| serde_json::json!({"component": component, "detail": detail}))
        .collect()
}
