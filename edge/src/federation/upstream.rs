//! The edge as an MCP client of one service, on a caller's behalf, over an exchange of a
//! tunnel: what the federated endpoint sends its backends.
//!
//! A service speaks one era, learned once ([`Upstreams::plan`]): `server/discover` answered
//! with 2026-07-28 among its versions is a modern backend, served statelessly; anything else
//! is a legacy one (2025-11-25 and older), reached through a session the edge opens itself
//! (`initialize`, then `notifications/initialized`) and keeps, one per service and caller (a
//! connector binds a backend session to the principal that opened it), and one more for each
//! set of capabilities the caller's 2025-11-25 clients declared (the session declares them in
//! turn: the backend may tailor its catalogue to them, and asks the client through it). A
//! session the backend forgot (404) is opened again once; one idle for [`POOL_IDLE`] is ended
//! at the backend.
//!
//! Every exchange is audited like a client request ([`OnBehalf`]), with the real service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use underpass_mcp::federation::caching;
use underpass_mcp::federation::notifications::Filter;
use underpass_mcp::MODERN_VERSION;
use underpass_proto::frame::RequestHead;

use crate::app::App;
use crate::assertion::AssertionClaims;
use crate::auth::Identity;
use crate::config::ServiceConfig;
use crate::federation::state::{CacheKey, Described, Federation, Pooled};
use crate::http::audited::OnBehalf;
use crate::http::ids::new_request_id;
use crate::mcp::failover::{self, How, Sent};
use crate::tunnels::exchange::OnHangUp;
use crate::tunnels::registry::Tunnel;

mod answer;

pub use answer::{answers, messages, MAX_ANSWER};
use answer::{is_event_stream, read_answer};

/// The protocol version the edge asks a legacy backend for.
pub const LEGACY_VERSION: &str = "2025-11-25";
/// A pooled legacy session unused this long is ended at its backend.
pub const POOL_IDLE: Duration = Duration::from_secs(300);

/// Why a request to a service brought no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("no connector serving it is online")]
    Unavailable,
    #[error("the tunnel to its connector failed")]
    Tunnel,
    #[error("the audit log could not take the request, and the edge refuses what it cannot audit")]
    Unaudited,
    #[error("its backend answered HTTP {0}")]
    Status(u16),
    #[error("its backend's answer is unreadable: {0}")]
    Unreadable(String),
    #[error("its backend answered error {code}: {message}")]
    Rpc {
        code: i64,
        message: String,
        data: Option<Value>,
    },
    #[error("the caller's rate for it (policy rule {rule:?}) is spent; retry in {retry:?}")]
    RateLimited { rule: String, retry: Duration },
}

impl UpstreamError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable => "unavailable",
            UpstreamError::Tunnel => "tunnel",
            UpstreamError::Unaudited => "unaudited",
            UpstreamError::Status(_) => "http_status",
            UpstreamError::Unreadable(_) => "unreadable",
            UpstreamError::Rpc { .. } => "error",
            UpstreamError::RateLimited { .. } => "rate_limited",
        }
    }
}

/// Who the edge acts for.
#[derive(Clone)]
pub struct Caller {
    pub identity: Identity,
    pub trace_id: String,
    /// The client's federated session, for the audit records (empty outside one).
    pub session: String,
    /// The forwarding headers of the client's request (`X-Forwarded-For` and the like).
    pub forwarded: Vec<(String, Vec<u8>)>,
    /// What a 2025-11-25 session's client declared at `initialize` that a server may ask of it
    /// (`asks::asking_capabilities`); an empty object for anyone else.
    pub asks: Value,
}

impl Caller {
    /// Whose legacy backend session serves this caller: one per principal, and one more per
    /// set of client capabilities its sessions declared (a legacy backend tailors a session to
    /// them, and asks the client through it).
    pub fn pool_key(&self) -> String {
        match self.asks.as_object() {
            Some(asks) if !asks.is_empty() => {
                format!("{}\n{}", self.identity.principal, self.asks)
            }
            _ => self.identity.principal.clone(),
        }
    }
}

/// Who a private cached result may be served to: the principal and its groups, and what its
/// client may be asked (a legacy backend's session, and so its lists, depend on that).
pub fn context(identity: &Identity, asks: &Value) -> String {
    let mut groups = identity.groups.clone();
    groups.sort_unstable();
    format!("{}\n{}\n{asks}", identity.principal, groups.join("\n"))
}

/// How one request reaches a service: the tunnel, and for a legacy backend its session.
pub struct Plan {
    pub service: String,
    pub tunnel: Arc<Tunnel>,
    /// `None` for a modern backend.
    legacy: Option<Pooled>,
}

/// How a request for `caller` reaches `service`: learns the backend's era first (and opens
/// a legacy session) when needed.
pub async fn plan(app: &App, service: &str, caller: &Caller) -> Result<Plan, UpstreamError> {
    let ups = &app.federation.upstreams;
    app.tunnels.settle(service, None).await;
    let principal = &caller.pool_key();
    if ups.era(service) != Some(true) {
        if let Some(plan) = pooled_plan(app, service, principal) {
            return Ok(plan);
        }
    }
    let tunnel = app
        .tunnels
        .pick(service)
        .ok_or(UpstreamError::Unavailable)?;
    if ups.era(service) == Some(true) {
        return Ok(Plan {
            service: service.to_owned(),
            tunnel,
            legacy: None,
        });
    }
    if ups.era(service).is_none() {
        let modern = Plan {
            service: service.to_owned(),
            tunnel: tunnel.clone(),
            legacy: None,
        };
        let discovered = send(app, &modern, caller, "server/discover", json!({})).await;
        let speaks_modern = discovered.as_ref().is_ok_and(|r| {
            r.get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|v| v == MODERN_VERSION))
        });
        match &discovered {
            Err(UpstreamError::Unavailable | UpstreamError::Tunnel | UpstreamError::Unaudited) => {
                return Err(discovered.err().unwrap_or(UpstreamError::Tunnel));
            }
            Ok(result) if speaks_modern => {
                keep_description(app, service, caller, result);
            }
            _ => {}
        }
        ups.learn_era(service, speaks_modern);
        if speaks_modern {
            return Ok(modern);
        }
    }
    // One session per caller: a request that waited while another opened it uses that one.
    let _opening = ups.opening(service, principal).await;
    if let Some(plan) = pooled_plan(app, service, principal) {
        return Ok(plan);
    }
    open_session(app, service, tunnel, caller).await
}

/// The caller's pooled legacy session at `service`, while its connector is there (a session
/// whose connector went away is forgotten).
fn pooled_plan(app: &App, service: &str, principal: &str) -> Option<Plan> {
    let ups = &app.federation.upstreams;
    let p = ups.pooled(service, principal)?;
    match app.tunnels.connector_tunnel(service, &p.connector) {
        Some(tunnel) => Some(Plan {
            service: service.to_owned(),
            tunnel,
            legacy: Some(p),
        }),
        None => {
            ups.drop_session(service, principal);
            None
        }
    }
}

/// Opens a legacy session for `caller` at `service` and pools it.
async fn open_session(
    app: &App,
    service: &str,
    tunnel: Arc<Tunnel>,
    caller: &Caller,
) -> Result<Plan, UpstreamError> {
    let ups = &app.federation.upstreams;
    let mut plan = Plan {
        service: service.to_owned(),
        tunnel,
        legacy: Some(Pooled {
            connector: String::new(),
            backend_id: None,
            version: LEGACY_VERSION.to_owned(),
            described: Arc::new(Described::of(&json!({}), false)),
            last_used: Instant::now(),
            identity: None,
            asks: caller.asks.clone(),
        }),
    };
    let params = json!({
        "protocolVersion": LEGACY_VERSION,
        "capabilities": caller.asks,
        "clientInfo": {"name": "underpass-edge", "version": env!("CARGO_PKG_VERSION")},
    });
    let (result, session) = exchange(app, &plan, caller, "initialize", params).await?;
    let result = parsed(&result)?;
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .filter(|v| underpass_mcp::SUPPORTED_VERSIONS.contains(v))
        .unwrap_or(LEGACY_VERSION)
        .to_owned();
    let pooled = Pooled {
        connector: plan.tunnel.connector.clone(),
        backend_id: session,
        version,
        described: Arc::new(Described::of(&result, false)),
        last_used: Instant::now(),
        identity: Some(caller.identity.clone()),
        asks: caller.asks.clone(),
    };
    plan.legacy = Some(pooled.clone());
    // The notification's answer (202) says nothing: a failure shows on the next request.
    let _ = notify(app, &plan, caller, "notifications/initialized").await;
    ups.keep_session(service, &caller.pool_key(), pooled);
    Ok(plan)
}

/// What the service says of itself: `server/discover`, or the `initialize` answer of the
/// legacy session the plan holds.
pub async fn describe(app: &App, plan: &Plan, caller: &Caller) -> Result<Described, UpstreamError> {
    match &plan.legacy {
        Some(p) => Ok((*p.described).clone()),
        None => {
            if let Some(described) = cached_description(app, &plan.service, caller) {
                return Ok(described);
            }
            let result = send(app, plan, caller, "server/discover", json!({})).await?;
            Ok(keep_description(app, &plan.service, caller, &result))
        }
    }
}

/// A modern service's `server/discover` for `caller`, if cached (counted as a hit or a miss).
fn cached_description(app: &App, service: &str, caller: &Caller) -> Option<Described> {
    let context = context(&caller.identity, &caller.asks);
    let key = discover_key(service, &context);
    let fed = &app.federation;
    fed.lookup(&fed.described, &key).map(|d| (*d).clone())
}

/// What a modern service's `server/discover` said, cached as its `ttlMs` and `cacheScope` say.
fn keep_description(app: &App, service: &str, caller: &Caller, result: &Value) -> Described {
    let described = Described::of(result, true);
    let context = context(&caller.identity, &caller.asks);
    let hints = caching::directives(result);
    let size = described.size();
    let kept = Arc::new(described.clone());
    Federation::keep(
        &app.federation.described,
        &discover_key(service, &context),
        hints,
        kept,
        size,
    );
    described
}

fn discover_key<'a>(service: &'a str, context: &'a str) -> CacheKey<'a> {
    CacheKey {
        service,
        method: "server/discover",
        param: "",
        context,
    }
}

/// What each of `services` says of itself, asked at once under the federation deadline:
/// `None` for one that did not answer in time.
pub async fn describe_each(
    app: &App,
    services: &[&ServiceConfig],
    caller: &Caller,
) -> Vec<Option<Described>> {
    let deadline = app.config.federation.deadline;
    let asked = services.iter().map(|s| async move {
        let described = async {
            let plan = plan(app, &s.name, caller).await?;
            describe(app, &plan, caller).await
        };
        tokio::time::timeout(deadline, described).await
    });
    futures_util::future::join_all(asked)
        .await
        .into_iter()
        .map(|answer| answer.ok().and_then(Result::ok))
        .collect()
}

/// Ends, every minute, the pooled legacy sessions unused for [`POOL_IDLE`] (a `DELETE` to
/// their backends, audited), so a stdio backend's process does not outlive its use; and
/// forgets the resource subscriptions of sessions as idle that no stream watches.
pub async fn end_idle_sessions(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        app.federation
            .subscribed
            .forget_idle(POOL_IDLE, Instant::now());
        for (service, _principal, pooled) in app.federation.upstreams.take_idle(POOL_IDLE) {
            let Some(tunnel) = app.tunnels.connector_tunnel(&service, &pooled.connector) else {
                continue;
            };
            let Some(identity) = pooled.identity.clone() else {
                continue;
            };
            let caller = Caller {
                identity,
                trace_id: String::new(),
                session: String::new(),
                forwarded: Vec::new(),
                asks: pooled.asks.clone(),
            };
            let plan = Plan {
                service: service.clone(),
                tunnel: tunnel.clone(),
                legacy: Some(pooled),
            };
            let mut head = plan.head(&app, &caller, "", None);
            head.method = "DELETE".into();
            head.headers.retain(|(n, _)| n != "content-type");
            let mut audit = OnBehalf::new(&head, "");
            if audit.ahead(&app).await {
                let ended =
                    crate::tunnels::exchange::exchange(&tunnel.conn, &head, Bytes::new()).await;
                audit.finish(&app, ended.ok().map(|(h, _)| h.status));
            }
        }
    }
}

/// One request and its result; a legacy session its backend lost is opened again once.
pub async fn request(
    app: &App,
    service: &str,
    caller: &Caller,
    method: &str,
    params: Value,
) -> Result<Value, UpstreamError> {
    parsed(&request_text(app, service, caller, method, params).await?)
}

/// [`request`], its result left as JSON text (checked, not parsed into a tree): for a large
/// result the caller reads only part of, such as a list page.
pub async fn request_text(
    app: &App,
    service: &str,
    caller: &Caller,
    method: &str,
    params: Value,
) -> Result<Box<RawValue>, UpstreamError> {
    let first = plan(app, service, caller).await?;
    let answered = match exchange(app, &first, caller, method, params.clone()).await {
        Err(UpstreamError::Status(404)) if first.legacy.is_some() => {
            app.federation
                .upstreams
                .drop_session(service, &caller.pool_key());
            let again = plan(app, service, caller).await?;
            exchange(app, &again, caller, method, params).await
        }
        other => other,
    };
    answered.map(|(result, _)| result)
}

async fn send(
    app: &App,
    plan: &Plan,
    caller: &Caller,
    method: &str,
    params: Value,
) -> Result<Value, UpstreamError> {
    parsed(&exchange(app, plan, caller, method, params).await?.0)
}

/// A result's JSON text as a tree.
fn parsed(result: &RawValue) -> Result<Value, UpstreamError> {
    serde_json::from_str(result.get()).map_err(|e| UpstreamError::Unreadable(e.to_string()))
}

/// Sends a notification (its answer is not read).
async fn notify(
    app: &App,
    plan: &Plan,
    caller: &Caller,
    method: &str,
) -> Result<(), UpstreamError> {
    let message = json!({"jsonrpc": "2.0", "method": method});
    let head = plan.head(app, caller, method, None);
    send_on_behalf(app, plan, caller, &head, message.to_string(), false)
        .await
        .map(|_| ())
}

/// Sends `message` down the plan's tunnel, audited on the caller's behalf (the `dispatched`
/// line ahead, the outcome once the head is back).
async fn send_on_behalf(
    app: &App,
    plan: &Plan,
    caller: &Caller,
    head: &RequestHead,
    body: impl Into<Bytes>,
    retry: bool,
) -> Result<Sent, UpstreamError> {
    let mut audit = OnBehalf::new(head, &caller.session);
    let how = How {
        retry,
        on_hang_up: OnHangUp::Cancel,
    };
    let body = body.into();
    let sent = failover::send(
        app,
        &plan.service,
        plan.tunnel.clone(),
        head,
        body,
        how,
        audit.record(),
    )
    .await;
    match sent {
        Ok(sent) => {
            audit.finish(app, Some(sent.head.status));
            Ok(sent)
        }
        Err(_) => {
            let unaudited = audit.record().outcome == underpass_audit::Outcome::AuditUnavailable;
            audit.finish(app, None);
            Err(if unaudited {
                UpstreamError::Unaudited
            } else {
                UpstreamError::Tunnel
            })
        }
    }
}

/// One request down the plan's tunnel: its result (JSON text) and the `Mcp-Session-Id`
/// answered.
async fn exchange(
    app: &App,
    plan: &Plan,
    caller: &Caller,
    method: &str,
    params: Value,
) -> Result<(Box<RawValue>, Option<String>), UpstreamError> {
    let id = app.federation.upstreams.id();
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = plan.message(Some(&id), method, params);
    let head = plan.head(app, caller, method, name.as_deref());
    // Outside a session, what reads and changes nothing is sent again if its tunnel is lost.
    let retry = plan.legacy.is_none() && failover::reads_only(method);
    let sent = send_on_behalf(app, plan, caller, &head, message.to_string(), retry).await?;
    let status = sent.head.status;
    let session = sent
        .head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("mcp-session-id"))
        .and_then(|(_, v)| String::from_utf8(v.clone()).ok());
    let answer = read_answer(sent, &id).await;
    if !(200..300).contains(&status) {
        // A JSON-RPC error in a 4xx answer says more than the status.
        return Err(match answer {
            Ok(Err(rpc)) => rpc,
            _ => UpstreamError::Status(status),
        });
    }
    match answer? {
        Ok(result) => Ok((result, session)),
        Err(rpc) => Err(rpc),
    }
}

/// Sends a legacy backend the client's response to a request the backend made on the
/// caller's session (its answer, 202, says nothing).
pub async fn respond(
    app: &App,
    service: &str,
    caller: &Caller,
    response: Value,
) -> Result<(), UpstreamError> {
    let plan = plan(app, service, caller).await?;
    let head = plan.head(app, caller, "", None);
    send_on_behalf(app, &plan, caller, &head, response.to_string(), false)
        .await
        .map(|_| ())
}

/// Subscribes the caller's legacy session to each of `uris` (`resources/subscribe`); a
/// refusal is logged and passed over.
pub async fn subscribe(app: &App, plan: &Plan, caller: &Caller, uris: &[String]) {
    for uri in uris {
        let params = json!({"uri": uri});
        if let Err(e) = send(app, plan, caller, "resources/subscribe", params).await {
            tracing::warn!(service = %plan.service, %uri, "federated listen: the backend refused a resource subscription: {e}");
        }
    }
}

/// Opens the stream on which a service reports changes to `caller`: a modern backend's
/// `subscriptions/listen` asking `filter`, or the event stream (GET) of the caller's legacy
/// session (see [`subscribe`] for its resources).
pub async fn listen(
    app: &App,
    plan: &Plan,
    caller: &Caller,
    filter: &Filter,
) -> Result<Sent, UpstreamError> {
    let (head, body) = if plan.is_modern() {
        let id = app.federation.upstreams.id();
        let params = json!({"notifications": filter.to_json()});
        let message = plan.message(Some(&id), "subscriptions/listen", params);
        let head = plan.head(app, caller, "subscriptions/listen", None);
        (head, Bytes::from(message.to_string()))
    } else {
        let mut head = plan.head(app, caller, "", None);
        head.method = "GET".into();
        head.headers
            .retain(|(n, _)| n != "content-type" && n != "accept");
        head.headers
            .push(("accept".into(), b"text/event-stream".to_vec()));
        (head, Bytes::new())
    };
    let sent = send_on_behalf(app, plan, caller, &head, body, false).await?;
    let status = sent.head.status;
    if !(200..300).contains(&status) {
        return Err(UpstreamError::Status(status));
    }
    if !is_event_stream(&sent) {
        return Err(UpstreamError::Unreadable(
            "it answered a stream request with no event stream".into(),
        ));
    }
    Ok(sent)
}

/// One request on the caller's behalf whose answer is read as it comes: the id it went
/// under and the messages of the answer ([`answers`]). `headers` are added to the era's.
pub async fn call(
    app: &App,
    service: &str,
    caller: &Caller,
    method: &str,
    name: Option<&str>,
    params: Value,
    headers: Vec<(String, Vec<u8>)>,
) -> Result<(Value, futures_util::stream::BoxStream<'static, Value>), UpstreamError> {
    let plan = plan(app, service, caller).await?;
    let id = app.federation.upstreams.id();
    let message = plan.message(Some(&id), method, params);
    let mut head = plan.head(app, caller, method, name);
    head.headers.extend(headers);
    let sent = send_on_behalf(app, &plan, caller, &head, message.to_string(), false).await?;
    let status = sent.head.status;
    if !(200..300).contains(&status) {
        // A JSON-RPC error in a 4xx answer says more than the status.
        return Err(match read_answer(sent, &id).await {
            Ok(Err(rpc)) => rpc,
            _ => UpstreamError::Status(status),
        });
    }
    Ok((id, answers(sent)))
}

/// The `_meta` key of a 2026-07-28 request's client capabilities.
pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// The `_meta` key of the lowest level of log a 2026-07-28 request asks to be sent.
pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

impl Plan {
    /// Whether the backend speaks 2026-07-28.
    pub fn is_modern(&self) -> bool {
        self.legacy.is_none()
    }

    /// A JSON-RPC message in the backend's era: a modern request carries the protocol
    /// fields in `params._meta`; a legacy one carries none of them.
    pub fn message(&self, id: Option<&Value>, method: &str, params: Value) -> Value {
        let mut params = match params {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut meta = match params.remove("_meta") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        // What the client can do is the backend's to know (it asks for input only what the
        // client can give); the rest of the protocol fields are the edge's, as the client.
        // and so is the log level it asked for (that era sends no log unasked).
        let capabilities = meta
            .remove(CLIENT_CAPABILITIES)
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        let log_level = meta.remove(LOG_LEVEL).filter(Value::is_string);
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        if self.is_modern() {
            meta.insert(
                "io.modelcontextprotocol/protocolVersion".into(),
                Value::from(MODERN_VERSION),
            );
            meta.insert(CLIENT_CAPABILITIES.into(), capabilities);
            if let Some(level) = log_level {
                meta.insert(LOG_LEVEL.into(), level);
            }
            meta.insert(
                "io.modelcontextprotocol/clientInfo".into(),
                json!({"name": "underpass-edge", "version": env!("CARGO_PKG_VERSION")}),
            );
        }
        if !meta.is_empty() {
            params.insert("_meta".into(), Value::Object(meta));
        }
        let mut message = Map::new();
        message.insert("jsonrpc".into(), Value::from("2.0"));
        if let Some(id) = id {
            message.insert("id".into(), id.clone());
        }
        message.insert("method".into(), Value::from(method));
        if !params.is_empty() || self.is_modern() {
            message.insert("params".into(), Value::Object(params));
        }
        Value::Object(message)
    }

    /// The exchange's head: the era's headers (version, method and name for a modern backend;
    /// version and session for a legacy one), the client's forwarding headers, and the
    /// identity assertion of the caller.
    pub fn head(
        &self,
        app: &App,
        caller: &Caller,
        method: &str,
        name: Option<&str>,
    ) -> RequestHead {
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("content-type".into(), b"application/json".to_vec()),
            (
                "accept".into(),
                b"application/json, text/event-stream".to_vec(),
            ),
        ];
        match &self.legacy {
            None => {
                headers.push((
                    "mcp-protocol-version".into(),
                    MODERN_VERSION.as_bytes().to_vec(),
                ));
                headers.push(("mcp-method".into(), method.as_bytes().to_vec()));
                if let Some(name) = name {
                    headers.push(("mcp-name".into(), header_value(name)));
                }
            }
            Some(p) => {
                // `initialize` names no version yet: it negotiates one.
                if method != "initialize" {
                    headers.push(("mcp-protocol-version".into(), p.version.as_bytes().to_vec()));
                }
                if let Some(id) = &p.backend_id {
                    headers.push(("mcp-session-id".into(), id.as_bytes().to_vec()));
                }
            }
        }
        headers.extend(caller.forwarded.iter().cloned());
        let session = self.legacy.as_ref().and_then(|p| p.backend_id.as_deref());
        let assertion = app
            .signer
            .reusable(&AssertionClaims {
                service: &self.service,
                principal: &caller.identity.principal,
                groups: &caller.identity.groups,
                session_id: session,
                trace_id: None,
            })
            .map_err(|e| tracing::error!("cannot sign identity assertion: {e}"))
            .ok();
        RequestHead {
            service: self.service.clone(),
            method: "POST".into(),
            query: String::new(),
            headers,
            principal: caller.identity.principal.clone(),
            trace_id: caller.trace_id.clone(),
            request_id: new_request_id(),
            assertion,
        }
    }
}

/// A header value for `Mcp-Name`: as is when it is visible ASCII, else the specification's
/// `=?base64?…?=` form.
pub fn header_value(value: &str) -> Vec<u8> {
    use base64::Engine as _;
    let plain = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.starts_with("=?");
    if plain {
        value.as_bytes().to_vec()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        format!("=?base64?{encoded}?=").into_bytes()
    }
}
