//! `underpass-demo-server`: a small MCP server speaking Streamable HTTP, used to
//! demonstrate and test Underpass end to end.
//!
//! It serves `http://<listen>/mcp` with four tools (`echo`, `add`, `slow`,
//! `whoami`) and one resource (`demo://readme`). Both MCP eras work: legacy
//! clients (`initialize`, `Mcp-Session-Id`, SSE) get a stateful session, and
//! 2026-07-28 clients are served statelessly by rmcp.

#![forbid(unsafe_code)]

use std::{collections::BTreeMap, convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{body::Incoming, service::service_fn, Request, Response, StatusCode};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rmcp::{
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CallToolResult, ContentBlock, Implementation, ListResourcesResult, PaginatedRequestParams,
        ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse,
        ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
    },
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, RoleServer, ServerHandler,
};
use serde::Deserialize;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tracing_subscriber::EnvFilter;

const MCP_PATH: &str = "/mcp";
const README_URI: &str = "demo://readme";
const README_TEXT: &str = "Underpass demo server.\n\
    Tools: echo (repeat a message), add (sum two numbers), slow (a long call that reports \
    progress), whoami (the x-underpass-* headers this server received).\n";
const MAX_STEPS: u32 = 100;
const MAX_DELAY_MS: u64 = 10_000;
/// How long in-flight connections get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "underpass-demo-server",
    version,
    about = "Underpass demo MCP server"
)]
struct Args {
    /// Address to listen on; the MCP endpoint is http://<listen>/mcp.
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// Extra accepted `Host` header value (repeatable). rmcp accepts only
    /// loopback hosts by default, as DNS-rebinding protection.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// Accept any `Host` header (e.g. when reached by a container name).
    #[arg(long)]
    allow_any_host: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoArgs {
    /// The message to send back.
    message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AddArgs {
    /// First addend.
    a: f64,
    /// Second addend.
    b: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SlowArgs {
    /// Number of steps (at most 100).
    #[serde(default = "default_steps")]
    #[schemars(range(max = 100))]
    steps: u32,
    /// Delay before each step, in milliseconds (at most 10000).
    #[serde(default = "default_delay_ms")]
    #[schemars(range(max = 10000))]
    delay_ms: u64,
}

fn default_steps() -> u32 {
    5
}

fn default_delay_ms() -> u64 {
    200
}

/// One instance per MCP session (rmcp calls the factory for each).
#[derive(Debug, Clone)]
struct DemoServer {
    tool_router: ToolRouter<Self>,
}

#[tool_router(router = tool_router)]
impl DemoServer {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Echo the given message back.")]
    async fn echo(&self, Parameters(EchoArgs { message }): Parameters<EchoArgs>) -> String {
        message
    }

    #[tool(description = "Add two numbers and return the sum.")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(
        description = "A long-running call: waits `delay_ms` before each of `steps` steps, \
                       sending a progress notification per step when the caller asked for \
                       progress (`_meta.progressToken`)."
    )]
    async fn slow(
        &self,
        Parameters(SlowArgs { steps, delay_ms }): Parameters<SlowArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<String, ErrorData> {
        if steps > MAX_STEPS {
            return Err(ErrorData::invalid_params(
                format!("steps must be at most {MAX_STEPS}"),
                None,
            ));
        }
        if delay_ms > MAX_DELAY_MS {
            return Err(ErrorData::invalid_params(
                format!("delay_ms must be at most {MAX_DELAY_MS}"),
                None,
            ));
        }
        let progress_token = ctx.meta.get_progress_token();
        for step in 1..=steps {
            // `ctx.ct` fires on notifications/cancelled or when the client goes away.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                _ = ctx.ct.cancelled() => {
                    tracing::info!(step, steps, "slow: cancelled by the client");
                    return Err(ErrorData::internal_error("cancelled", None));
                }
            }
            if let Some(token) = &progress_token {
                let progress = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step} of {steps}"));
                if let Err(error) = ctx.peer.notify_progress(progress).await {
                    tracing::debug!(%error, "slow: could not send progress");
                }
            }
        }
        Ok(format!("done after {steps} steps"))
    }

    #[tool(
        description = "Return, as JSON, the x-underpass-* HTTP headers this server received \
                       with the call (the identity the gateway asserts)."
    )]
    async fn whoami(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        // The Streamable HTTP transport puts the request's `http::request::Parts`
        // into the request extensions; it is absent on other transports.
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        if let Some(parts) = ctx.extensions.get::<http::request::Parts>() {
            for (name, value) in &parts.headers {
                if name.as_str().starts_with("x-underpass-") {
                    let value = String::from_utf8_lossy(value.as_bytes());
                    headers
                        .entry(name.as_str().to_owned())
                        .and_modify(|joined| {
                            joined.push_str(", ");
                            joined.push_str(&value);
                        })
                        .or_insert_with(|| value.into_owned());
                }
            }
        }
        Ok(CallToolResult::success(vec![ContentBlock::json(&headers)?]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            "underpass-demo-server",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "This is the Underpass demo server, reached through an Underpass tunnel. \
             Tools: echo, add, slow (reports progress), whoami. Resource: demo://readme.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            README_URI, "readme",
        )
        .with_description("What this demo server offers")
        .with_mime_type("text/plain")]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != README_URI {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            ));
        }
        Ok(ReadResourceResult::new(vec![ResourceContents::text(README_TEXT, README_URI)]).into())
    }
}

type Mcp = StreamableHttpService<DemoServer, LocalSessionManager>;

/// Serves MCP on `/mcp` and 404 everywhere else.
async fn route(mcp: Mcp, request: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    if request.uri().path() == MCP_PATH {
        return mcp.handle(request).await;
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")).boxed());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Serves one TCP connection (HTTP/1.1 or h2c) until it ends or shutdown is
/// requested, then lets in-flight exchanges finish.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mcp: Mcp,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let mcp = mcp.clone();
        async move { Ok::<_, Infallible>(route(mcp, request).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            // Also taken if the sender is gone: either way, we are stopping.
            _ = shutdown.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let mut config = StreamableHttpServerConfig::default()
        // Legacy (2025-11-25 and older) clients get Mcp-Session-Id sessions;
        // responses may be SSE streams (needed for progress notifications).
        .with_legacy_session_mode(true)
        .with_json_response(false);
    if args.allow_any_host {
        config = config.disable_allowed_hosts();
    } else if !args.allowed_hosts.is_empty() {
        let mut hosts = config.allowed_hosts.clone();
        hosts.extend(args.allowed_hosts);
        config = config.with_allowed_hosts(hosts);
    }
    // Cancelling this token closes every session and event stream.
    let sessions_ct = config.cancellation_token.clone();
    let mcp: Mcp = StreamableHttpService::new(
        || Ok(DemoServer::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    );

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("no local address")?;
    println!("underpass-demo-server listening on http://{local}{MCP_PATH}");
    tracing::info!(%local, "ready");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let task = serve_connection(stream, peer, mcp.clone(), shutdown_rx.clone());
                    connections.spawn(task);
                }
                Err(error) => {
                    // Usually transient (e.g. out of file descriptors): back off a little.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    tracing::info!(open = connections.len(), "shutting down");
    drop(listener);
    sessions_ct.cancel();
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "drain timed out; closing connections"
        );
        connections.abort_all();
    }
    Ok(())
}
