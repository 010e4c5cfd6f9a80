//! The backends of this connector's services, by name: one [`Backend`] per configured
//! service, each kind behind the same `answer`, plus the service's caps on exchanges in
//! flight.
//!
//! Kinds: [`http`] (Streamable HTTP: each exchange forwarded as one request), [`sse`] (a
//! 2024-11-05 HTTP+SSE server, one connection per session) and [`stdio`] (a local process per
//! session); the last two through the session bridge ([`crate::bridge`]); [`openapi`] (a REST
//! API described by an OpenAPI document, served as MCP tools by the connector itself).

mod error;
pub mod http;
pub mod openapi;
pub mod sse;
pub mod stdio;

use std::collections::HashMap;

use bytes::Bytes;
use underpass_proto::frame::RequestHead;

pub use self::error::BackendError;
use self::http::HttpBackend;
use self::openapi::OpenapiBackend;
use self::sse::{SseBackend, SseOpener};
use self::stdio::{ProcessOpener, StdioBackend};
use crate::answer::Answer;
use crate::concurrency::{Limiter, Permit};
use crate::config::{BackendConfig, ConnectorConfig};
use crate::http_client::{http_client, HttpClient};
use underpass_shared::telemetry::Tracer;

/// The backend of one service.
pub enum Backend {
    /// A Streamable HTTP server: forwarded request by request.
    Http(HttpBackend),
    /// A legacy HTTP+SSE server: bridged, a connection per session.
    Sse(SseBackend),
    /// A local stdio server: bridged, a process per session.
    Stdio(StdioBackend),
    /// A REST API: its OpenAPI operations served as tools by the connector.
    Openapi(Box<OpenapiBackend>),
}

impl Backend {
    /// Nothing is started or connected here (no runtime needed).
    pub fn new(
        service: &str,
        config: &BackendConfig,
        client: &HttpClient,
        tracer: &Tracer,
    ) -> Backend {
        match config {
            BackendConfig::Http { url } => Backend::Http(HttpBackend::new(
                url.clone(),
                client.clone(),
                tracer.clone(),
            )),
            BackendConfig::Sse { url, sessions } => Backend::Sse(SseBackend::new(
                service,
                SseOpener::new(url.clone(), client.clone()),
                sessions.clone(),
            )),
            BackendConfig::Stdio {
                command,
                env,
                cwd,
                sessions,
            } => Backend::Stdio(StdioBackend::new(
                service,
                ProcessOpener::new(command.clone(), env.clone(), cwd.clone()),
                sessions.clone(),
            )),
            BackendConfig::Openapi(config) => Backend::Openapi(Box::new(OpenapiBackend::new(
                service,
                config,
                client.clone(),
            ))),
        }
    }

    /// Serves one exchange of `head.principal`: the backend's answer, or why there is none.
    pub async fn answer(&self, head: &RequestHead, body: Bytes) -> Result<Answer, BackendError> {
        match self {
            Backend::Http(http) => http.answer(head, body).await,
            Backend::Sse(sse) => Ok(sse
                .exchange(&head.principal, &head.method, &head.headers, body)
                .await),
            Backend::Stdio(stdio) => Ok(stdio
                .exchange(&head.principal, &head.method, &head.headers, body)
                .await),
            Backend::Openapi(openapi) => Ok(openapi.answer(head, body).await),
        }
    }

    /// Ends every session of a bridged backend cleanly; nothing to do for HTTP.
    pub async fn shutdown(&self) {
        match self {
            Backend::Http(_) | Backend::Openapi(_) => {}
            Backend::Sse(sse) => sse.shutdown().await,
            Backend::Stdio(stdio) => stdio.shutdown().await,
        }
    }
}

/// A configured service: its backend and its caps on exchanges in flight.
struct Service {
    backend: Backend,
    limiter: Limiter,
}

/// The backends of this connector's services. HTTP and SSE ones share one connection pool.
pub struct Backends {
    services: HashMap<String, Service>,
    /// What the connector reports to its edges (`Stats`).
    pub stats: crate::stats::ConnectorStats,
}

impl Backends {
    /// `tracer`: where the spans of backend calls go (HTTP backends only: they are the ones
    /// that get a `traceparent`).
    pub fn new(config: &ConnectorConfig, tracer: &Tracer) -> Self {
        let client = http_client();
        let services = config
            .services
            .iter()
            .map(|s| {
                let service = Service {
                    backend: Backend::new(&s.name, &s.backend, &client, tracer),
                    limiter: Limiter::new(&s.name, s.concurrency),
                };
                (s.name.clone(), service)
            })
            .collect();
        let stats = crate::stats::ConnectorStats::new(config.services.iter().map(|s| &*s.name));
        Backends { services, stats }
    }

    /// The figures reported to the edges now: the counters, and the bridges' sessions.
    pub fn stats_snapshot(&self) -> underpass_proto::control::Stats {
        let (mut stdio, mut bridged) = (0, 0);
        for service in self.services.values() {
            match &service.backend {
                Backend::Http(_) | Backend::Openapi(_) => {}
                Backend::Sse(b) => bridged += b.session_count(),
                Backend::Stdio(b) => {
                    stdio += b.session_count();
                    bridged += b.session_count();
                }
            }
        }
        self.stats.snapshot(stdio as u64, bridged as u64)
    }

    /// The service's backend and a place for one exchange of `head.principal` under the
    /// service's caps, held until the permit is dropped.
    pub fn admit(&self, head: &RequestHead) -> Result<(&Backend, Permit), BackendError> {
        let service = self
            .services
            .get(&head.service)
            .ok_or_else(|| BackendError::UnknownService(head.service.clone()))?;
        let permit = service.limiter.admit(&head.principal).map_err(|refused| {
            tracing::info!(service = %head.service, principal = %head.principal,
                trace_id = %head.trace_id, "exchange refused: {refused}");
            BackendError::from(refused)
        })?;
        Ok((&service.backend, permit))
    }

    /// Ends every bridged session (stdio processes, SSE connections) cleanly.
    pub async fn shutdown(&self) {
        for service in self.services.values() {
            service.backend.shutdown().await;
        }
    }
}
