//! The admin listener: `/healthz` (the process is up) and `/readyz` (a tunnel is up and the
//! edge is not draining, so
//! client traffic can be served; with the tasks and descriptors the edge holds). Plain HTTP:
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
use crate::revocation::Revocations;
use crate::tunnels::registry::Registry;

/// Serves the admin endpoints; `edge_addr` is the tunnel listener's address, `jwks` the public
/// key set of the identity assertions.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    edge_addr: SocketAddr,
    revocations: Arc<Revocations>,
    problems: Arc<Problems>,
    jwks: serde_json::Value,
    drain: Drain,
) {
    let jwks = Arc::new(jwks);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let registry = registry.clone();
        let revocations = revocations.clone();
        let problems = problems.clone();
        let jwks = jwks.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let registry = registry.clone();
                let revocations = revocations.clone();
                let problems = problems.clone();
                let jwks = jwks.clone();
                let draining = drain.is_draining();
                async move {
                    Ok::<_, Infallible>(answer(
                        &registry,
                        edge_addr,
                        &revocations,
                        &problems,
                        &jwks,
                        draining,
                        &req,
                    ))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(
    registry: &Registry,
    edge_addr: SocketAddr,
    revocations: &Revocations,
    problems: &Problems,
    jwks: &serde_json::Value,
    draining: bool,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/.well-known/jwks.json" => (StatusCode::OK, jwks.clone()),
        "/healthz" => (StatusCode::OK, serde_json::json!({"status": "ok"})),
        "/readyz" => {
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
                    "connectors": connectors(registry, edge_addr),
                    "problems": problems_of(revocations, problems),
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
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
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
