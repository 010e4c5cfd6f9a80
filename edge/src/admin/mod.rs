//! The admin listener (`[admin] listen`): `/healthz` (the process is up), `/readyz` (a tunnel
//! is up and the edge is not draining, so client traffic can be served; with the tasks and
//! descriptors the edge holds, and what an operator must look at), `/metrics`
//! ([`crate::metrics`]), `/.well-known/jwks.json`, the admin API (`/api/...`: [`api`] views,
//! [`actions`] that change the edge) and the dashboard (`/`, [`dashboard`]).
//!
//! Who may call what is [`access::decide`], a pure function of the listener (loopback or not,
//! TLS or not), the caller's certificate and the request line; this module is the shell:
//! accept, TLS (`[admin] cert`/`key`: TLS 1.3, a client certificate optional at the handshake
//! and checked against `[tunnel] ca`, the trust domain and the revocation list), bounded
//! request heads and bodies, and the answers.

pub mod access;
mod actions;
pub mod api;
mod audit;
mod dashboard;
pub mod denials;
pub mod feed;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use underpass_proto::identity::SpiffeId;

use crate::app::App;
use crate::certs::{Certs, Problems};
use crate::metrics::{self, Metrics};
use crate::revocation::Revocations;
use crate::tunnels::registry::Registry;
use access::{Access, Listener, Peer, Route};

/// Largest request body (the mutating calls' JSON), in bytes: 413 beyond.
pub const MAX_BODY: usize = 64 * 1024;
/// An oversized body up to this size is read (and dropped) before the 413, for at most
/// [`LINGER_TIME`].
const LINGER: usize = 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);
/// Longest request target, in bytes: 414 beyond.
const MAX_URI: usize = 2048;
/// Largest request head (hyper's read buffer; it answers 431 beyond).
const MAX_HEAD: usize = 16 * 1024;
/// Admin connections served at once; more are closed at once (an operator's browser and a
/// few scrapers need far fewer).
const MAX_CONNECTIONS: usize = 64;
/// Time to complete the TLS handshake, and to send a request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin endpoints read.
pub struct Admin {
    pub app: Arc<App>,
    pub certs: Arc<Certs>,
    /// The tunnel listener's address (shown per tunnel).
    pub edge_addr: SocketAddr,
    /// The public key set of the identity assertions.
    pub jwks: serde_json::Value,
    pub metrics: Arc<Metrics>,
    /// How the listener is bound (see [`access::Listener::of`]).
    pub listener: Listener,
    audit: audit::AuditStatus,
}

impl Admin {
    pub fn new(
        app: Arc<App>,
        certs: Arc<Certs>,
        jwks: serde_json::Value,
        metrics: Arc<Metrics>,
        listener: Listener,
    ) -> Admin {
        Admin {
            edge_addr: app.config.tunnel.listen,
            app,
            certs,
            jwks,
            metrics,
            listener,
            audit: audit::AuditStatus::default(),
        }
    }

    fn registry(&self) -> &Registry {
        &self.app.tunnels
    }
}

/// Serves the admin endpoints; with `tls`, every connection speaks TLS first.
pub async fn serve(listener: TcpListener, admin: Admin, tls: Option<tokio_rustls::TlsAcceptor>) {
    let admin = Arc::new(admin);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let admin = admin.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_io(stream, admin, None).await,
                Some(tls) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
                    else {
                        return;
                    };
                    let leaf = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.clone().into_owned());
                    serve_io(stream, admin, leaf).await
                }
            }
        });
    }
}

/// One connection: HTTP/1.1 with a bounded head and a header deadline.
async fn serve_io<I>(io: I, admin: Arc<Admin>, leaf: Option<CertificateDer<'static>>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The handshake verified the chain; the identity is read once, revocation per request.
    let identity = leaf
        .as_ref()
        .and_then(|l| SpiffeId::from_certificate_der(l).ok());
    let leaf = Arc::new(leaf);
    let identity = Arc::new(identity);
    let service = service_fn(move |req| {
        let (admin, leaf, identity) = (admin.clone(), leaf.clone(), identity.clone());
        async move {
            let peer = peer_of(&admin.app.security.revocations, &leaf, &identity);
            Ok::<_, Infallible>(answer(&admin, &peer, req).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn peer_of(
    revocations: &Revocations,
    leaf: &Option<CertificateDer<'static>>,
    identity: &Option<SpiffeId>,
) -> Peer {
    match (leaf, identity) {
        (Some(leaf), _) if revocations.is_revoked(leaf) => Peer::Revoked,
        (Some(_), Some(id)) => Peer::Certificate {
            role: id.role,
            name: id.name.clone(),
        },
        _ => Peer::Anonymous,
    }
}

type Answer = Response<Full<Bytes>>;

async fn answer(admin: &Admin, peer: &Peer, req: Request<Incoming>) -> Answer {
    if req.uri().to_string().len() > MAX_URI {
        return json(
            StatusCode::URI_TOO_LONG,
            serde_json::json!({"error": "request target too long"}),
        );
    }
    let (route, actor) = match access::decide(
        admin.listener,
        peer,
        req.method().as_str(),
        req.uri().path(),
    ) {
        Access::Allow { route, actor } => (route, actor),
        Access::NotFound => {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "not found"}),
            )
        }
        Access::MethodNotAllowed { allow } => {
            let mut resp = json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({"error": format!("method not allowed: use {allow}")}),
            );
            resp.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static(allow));
            return resp;
        }
        Access::Unauthenticated { reason } => {
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": reason}),
            )
        }
        Access::Forbidden { reason } => {
            return json(StatusCode::FORBIDDEN, serde_json::json!({"error": reason}))
        }
    };
    let header =
        |name: http::header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let from = access::Provenance {
        host: header(http::header::HOST).or(req.uri().authority().map(|a| a.as_str())),
        origin: header(http::header::ORIGIN),
        fetch_site: header(http::header::HeaderName::from_static("sec-fetch-site")),
    };
    if let Err(reason) = access::check_provenance(admin.listener, route.kind(), from) {
        return json(StatusCode::FORBIDDEN, serde_json::json!({"error": reason}));
    }
    let is_post = req.method() == Method::POST;
    let body = if is_post {
        match read_body(req).await {
            Ok(body) => body,
            Err(resp) => return resp,
        }
    } else {
        Bytes::new()
    };
    route_to(admin, route, &actor, &body).await
}

/// The body, at most [`MAX_BODY`] bytes (413 beyond, also when `Content-Length` says so).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Answer> {
    let too_large = || {
        json(
            StatusCode::PAYLOAD_TOO_LARGE,
            serde_json::json!({"error": format!("request body larger than {MAX_BODY} bytes")}),
        )
    };
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY as u64) {
        if n <= LINGER as u64 {
            // Read and drop what the client is sending before answering, so that it reads
            // the 413 instead of a connection reset in the middle of its upload.
            let _ = tokio::time::timeout(LINGER_TIME, discard(req.into_body())).await;
        }
        return Err(too_large());
    }
    let limited = Limited::new(req.into_body(), MAX_BODY);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        _ => Err(json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "cannot read the request body"}),
        )),
    }
}

/// Reads a body to its end, keeping none of it, up to [`LINGER`] bytes.
async fn discard(mut body: Incoming) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, Bytes::len);
        if seen > LINGER {
            return;
        }
    }
}

async fn route_to(admin: &Admin, route: Route, actor: &str, body: &[u8]) -> Answer {
    let app = &admin.app;
    match route {
        Route::Metrics => match admin.metrics.render() {
            Ok(text) => respond(StatusCode::OK, metrics::CONTENT_TYPE, text.into()),
            Err(_) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "cannot encode the metrics\n".into(),
            ),
        },
        Route::Jwks => json(StatusCode::OK, admin.jwks.clone()),
        Route::Healthz => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        Route::Readyz => readyz(admin),
        Route::Dashboard | Route::DashboardJs | Route::DashboardCss => dashboard::page(&route),
        Route::Connectors => json(
            StatusCode::OK,
            api::connectors(&app.config, admin.registry(), admin.edge_addr),
        ),
        Route::Services => json(
            StatusCode::OK,
            api::services(&app.config, admin.registry(), &app.feed),
        ),
        Route::Sessions => json(StatusCode::OK, api::sessions(admin.registry())),
        Route::Denials => json(StatusCode::OK, api::denials(&app.feed)),
        Route::Certificates => json(
            StatusCode::OK,
            api::certificates(&admin.certs, admin.registry()),
        ),
        Route::FederationNames => json(StatusCode::OK, crate::federation::shortened::report(app)),
        Route::Audit => json(
            StatusCode::OK,
            admin
                .audit
                .status(app.config.audit.as_ref(), &app.feed)
                .await,
        ),
        Route::Drain(name) => actions::drain(app, &name, actor),
        Route::Resume(name) => actions::resume(app, &name, actor),
        Route::EndSessions => actions::end_sessions(app, body, actor),
        Route::Reload => actions::reload(app, admin.certs.clone(), actor).await,
    }
}

fn readyz(admin: &Admin) -> Answer {
    let registry = admin.registry();
    let draining = admin.app.drain.is_draining();
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
    json(
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
            "problems": problems_of(&admin.app.security.revocations, &admin.certs.problems),
            "tasks": held.tasks,
            "fds": held.fds,
        }),
    )
}

pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Answer {
    respond(status, "application/json", body.to_string().into())
}

pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
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
