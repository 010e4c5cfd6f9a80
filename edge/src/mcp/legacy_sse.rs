//! The 2024-11-05 HTTP+SSE transport at `/mcp/{service}/sse`, bridged onto whatever the
//! backend speaks through the tunnel (Streamable HTTP, or stdio behind the connector).
//!
//! `GET` opens the client's event stream: the bridge is pinned to one tunnel, bound to the
//! principal, and announces its message URL in an `endpoint` event. Each `POST ?sessionId=`
//! is admitted like any request, answered 202, and relayed as a Streamable HTTP exchange;
//! every message that comes back is pushed onto the client's event stream. Once the backend
//! session is initialized, a backend GET stream carries server-initiated messages too.

use std::sync::{Arc, Mutex};
use underpass_mcp::sse::{KEEPALIVE_COMMENT, KEEPALIVE_INTERVAL};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;
use underpass_mcp::jsonrpc::code;
use underpass_mcp::SseParser;
use underpass_proto::frame::RequestHead;

use underpass_audit::Outcome;

use crate::app::App;
use crate::assertion::AssertionClaims;
use crate::bridges::Bridge;
use crate::http::audited::PendingRecord;
use crate::http::audited::{write_ahead, OnBehalf};
use crate::http::body::{full_body, Body, BodyError};
use crate::http::conn::ConnInfo;
use crate::http::headers::forwarding_headers;
use crate::http::host::check_host_origin;
use crate::http::ids::new_request_id;
use crate::http::media::check_media;
use crate::http::respond::{error_response, event_stream_response, incident};
use crate::mcp::admission::{self, Admitted};
use crate::mcp::list_filter::{Applied, ListFilter};
use crate::mcp::mediate::MediationLog;
use crate::mcp::precheck::InFlight;
use crate::mcp::sessions;
use crate::tunnels::exchange::{exchange, response_stream, OnHangUp};

/// Messages queued for a client that reads too slowly before the bridge gives up on it.
const QUEUE: usize = 1024;

fn message_event(msg: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {msg}\n\n"))
}

/// `GET /mcp/{service}/sse`: opens the client's event stream.
pub async fn open(
    app: &Arc<App>,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    audit: &mut PendingRecord,
) -> Response<Body> {
    if let Err(r) = check_host_origin(&app.config.clients, parts)
        .and_then(|()| check_media(&Method::GET, &parts.headers))
    {
        audit.outcome = Outcome::BadRequest;
        return *r;
    }
    if !app.config.has_service(service) {
        return error_response(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            &format!("unknown service {service:?}"),
        );
    }
    let Admitted { identity, .. } = match admission::admit(app, conn, service, parts, b"", audit) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let slot = match sessions::reserve_for(app, &identity.principal, audit) {
        Ok(slot) => slot,
        Err(r) => return *r,
    };
    app.tunnels.settle(service, None).await;
    let Some(tunnel) = app.tunnels.pick(service) else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "no connector serving this service is online; retry later",
        );
    };
    let id = format!("{:032x}", rand::random::<u128>());
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let bridge = Arc::new(Bridge {
        id: id.clone(),
        service: service.to_owned(),
        identity,
        tunnel,
        events: tx,
        forwarded: forwarding_headers(conn, parts, !app.config.clients.insecure_plaintext),
        backend: Mutex::new((None, None)),
        _slot: slot,
    });
    app.bridges.insert(id.clone(), bridge);
    audit.session = Some(id.clone());
    let endpoint = Bytes::from(format!(
        "event: endpoint\ndata: /mcp/{service}/sse?sessionId={id}\n\n"
    ));

    // Ends the bridge (and the backend session) when the client's stream goes away.
    struct Closer {
        app: Arc<App>,
        id: String,
    }
    impl Drop for Closer {
        fn drop(&mut self) {
            if let Some(bridge) = self.app.bridges.remove(&self.id) {
                let app = self.app.clone();
                tokio::spawn(async move { end_backend_session(&app, &bridge).await });
            }
        }
    }
    let closer = Closer {
        app: app.clone(),
        id,
    };
    let events = futures_util::stream::unfold((rx, closer), |(mut rx, closer)| async move {
        let next = match tokio::time::timeout(KEEPALIVE_INTERVAL, rx.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => return None,
            Err(_) => Bytes::from_static(KEEPALIVE_COMMENT),
        };
        Some((
            Ok::<_, BodyError>(hyper::body::Frame::data(next)),
            (rx, closer),
        ))
    });
    let stream = futures_util::stream::once(async move { Ok(hyper::body::Frame::data(endpoint)) })
        .chain(events);
    event_stream_response(http_body_util::combinators::UnsyncBoxBody::new(
        http_body_util::StreamBody::new(stream),
    ))
}

/// `POST /mcp/{service}/sse?sessionId=…`: one client message.
pub async fn post(
    app: &Arc<App>,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    body: Bytes,
    audit: &mut PendingRecord,
) -> Response<Body> {
    if let Err(r) = check_host_origin(&app.config.clients, parts)
        .and_then(|()| check_media(&Method::POST, &parts.headers))
    {
        audit.outcome = Outcome::BadRequest;
        return *r;
    }
    let id = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("sessionId="))
        .unwrap_or("");
    let Some(bridge) = app.bridges.get(id).filter(|b| b.service == service) else {
        return error_response(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            "unknown sessionId; open the event stream with GET first",
        );
    };
    audit.session = Some(id.to_owned());
    let admitted = match admission::admit(app, conn, service, parts, &body, audit) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if admitted.identity.principal != bridge.identity.principal {
        return error_response(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            "unknown sessionId; open the event stream with GET first",
        );
    }
    if let Some(refusal) = write_ahead(app, audit).await {
        return refusal;
    }
    let trace_id = audit.trace_id.clone().unwrap_or_default();
    let request_id = audit.request_id.clone().unwrap_or_else(new_request_id);
    let app = app.clone();
    // The forward counts as the principal's request in flight until it is done.
    let in_flight = parts.extensions.get::<InFlight>().cloned();
    tokio::spawn(async move {
        forward(&app, &bridge, admitted, body, trace_id, request_id).await;
        drop(in_flight);
    });
    let mut resp = Response::new(full_body("Accepted"));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

fn head(
    app: &App,
    bridge: &Bridge,
    method: &str,
    trace_id: String,
    request_id: String,
) -> RequestHead {
    let (session, version) = bridge.backend.lock().map(|b| b.clone()).unwrap_or_default();
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        (
            "accept".into(),
            b"application/json, text/event-stream".to_vec(),
        ),
    ];
    if let Some(s) = &session {
        headers.push(("mcp-session-id".into(), s.clone().into_bytes()));
    }
    if let Some(v) = version {
        headers.push(("mcp-protocol-version".into(), v.into_bytes()));
    }
    headers.extend(bridge.forwarded.iter().cloned());
    let assertion = app
        .signer
        .reusable(&AssertionClaims {
            service: &bridge.service,
            principal: &bridge.identity.principal,
            groups: &bridge.identity.groups,
            session_id: session.as_deref(),
            trace_id: None,
        })
        .ok();
    RequestHead {
        service: bridge.service.clone(),
        method: method.to_owned(),
        query: String::new(),
        headers,
        principal: bridge.identity.principal.clone(),
        trace_id,
        request_id,
        assertion,
    }
}

/// Relays one client message and pushes what comes back onto the client's stream.
async fn forward(
    app: &Arc<App>,
    bridge: &Arc<Bridge>,
    admitted: Admitted,
    body: Bytes,
    trace_id: String,
    edge_request_id: String,
) {
    let request_id = admitted
        .calls
        .iter()
        .find(|c| c.is_request)
        .and_then(|c| c.id.clone());
    let is_initialize = admitted.calls.iter().any(|c| c.method == "initialize");
    let is_initialized = admitted
        .calls
        .iter()
        .any(|c| c.method == "notifications/initialized");
    // The POST was answered (202) and audited before the answer came: what obligations do
    // to it gets a line of its own.
    let mediation = MediationLog::default();
    let filter = ListFilter::for_request(
        &admitted.calls,
        admitted.policy.clone(),
        app.security.policy.clone(),
        || admitted.identity.principals(),
        &bridge.service,
        &mediation,
    );
    let fail = |message: String| {
        if let Some(id) = &request_id {
            let msg = underpass_mcp::jsonrpc_error(Some(id), code::UPSTREAM_FAILED, &message, None);
            let _ = bridge.events.try_send(message_event(&msg));
        }
    };
    let (resp_head, recv) = match exchange(
        &bridge.tunnel.conn,
        &head(app, bridge, "POST", trace_id.clone(), edge_request_id),
        body,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            let detail = format!(
                "exchange with connector {:?} failed: {e}",
                bridge.tunnel.connector
            );
            return fail(incident(
                "the tunnel to the connector failed",
                &bridge.service,
                &detail,
            ));
        }
    };
    if is_initialize && (200..300).contains(&resp_head.status) {
        let session = resp_head
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("mcp-session-id"))
            .and_then(|(_, v)| String::from_utf8(v.clone()).ok());
        if let Ok(mut b) = bridge.backend.lock() {
            b.0 = session;
        }
    }
    let is_sse = resp_head.headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("content-type") && v.starts_with(b"text/event-stream")
    });
    let status = resp_head.status;
    let messages = pump(bridge, recv, is_sse, filter.as_ref(), is_initialize).await;
    let done = mediation
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    if !done.is_empty() {
        let head = head(app, bridge, "POST", trace_id.clone(), new_request_id());
        let mut audit = OnBehalf::new(&head, &bridge.id);
        let record = audit.record();
        record.mcp_method = admitted.calls.first().map(|c| c.method.clone());
        record.rpc_id = request_id.clone();
        record.mediation = done;
        audit.finish(app, Some(status));
    }
    if status >= 400 && messages == 0 {
        fail(format!("the backend answered HTTP {status}"));
    }
    if is_initialized {
        let app = app.clone();
        let bridge = bridge.clone();
        tokio::spawn(async move { listen(&app, &bridge, trace_id).await });
    }
}

/// Pushes every JSON-RPC message of a response body onto the client's stream; returns how many.
async fn pump(
    bridge: &Bridge,
    recv: underpass_transport::ExchangeRecv,
    is_sse: bool,
    filter: Option<&ListFilter>,
    learn_version: bool,
) -> usize {
    let mut stream = response_stream(
        recv,
        is_sse,
        &bridge.tunnel.connector,
        OnHangUp::Cancel,
        None,
    );
    let mut parser = SseParser::default();
    let mut json = Vec::new();
    let mut count = 0;
    let mut push = |mut msg: Value| {
        if let Some(f) = filter {
            // Every message is judged: list answers (all of a batch) and notifications.
            if f.apply(&mut msg) == Applied::Drop {
                return true;
            }
        }
        if learn_version {
            if let Some(v) = msg
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str)
            {
                if let Ok(mut b) = bridge.backend.lock() {
                    b.1 = Some(v.to_owned());
                }
            }
        }
        count += 1;
        bridge.events.try_send(message_event(&msg)).is_ok()
    };
    while let Some(Ok(frame)) = stream.next().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if !is_sse {
            json.extend_from_slice(&data);
            continue;
        }
        let Ok(events) = parser.feed(&data) else {
            break;
        };
        for event in events {
            if let Some(msg) = event
                .data()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
            {
                if !push(msg) {
                    return count;
                }
            }
        }
    }
    match serde_json::from_slice::<Value>(&json) {
        Ok(Value::Array(items)) => {
            for m in items {
                if !push(m) {
                    break;
                }
            }
        }
        Ok(msg) => {
            push(msg);
        }
        Err(_) => {}
    }
    count
}

/// The backend's GET stream of server-initiated messages (if it offers one).
async fn listen(app: &Arc<App>, bridge: &Arc<Bridge>, trace_id: String) {
    let mut head = head(app, bridge, "GET", trace_id, new_request_id());
    // A GET has no body, and asks for an event stream only: one Accept, replacing the POST's.
    head.headers
        .retain(|(n, _)| n != "content-type" && n != "accept");
    head.headers
        .push(("accept".into(), b"text/event-stream".to_vec()));
    let mut audit = OnBehalf::new(&head, &bridge.id);
    if !audit.ahead(app).await {
        return;
    }
    let exchanged = exchange(&bridge.tunnel.conn, &head, Bytes::new()).await;
    audit.finish(app, exchanged.as_ref().ok().map(|(h, _)| h.status));
    let Ok((resp_head, recv)) = exchanged else {
        return;
    };
    if resp_head.status == 200 {
        // Server-initiated messages are filtered too (news about hidden resources).
        let filter = ListFilter::for_request(
            &[],
            app.security.policy.get(),
            app.security.policy.clone(),
            || bridge.identity.principals(),
            &bridge.service,
            &MediationLog::default(),
        );
        pump(bridge, recv, true, filter.as_ref(), false).await;
    }
}

async fn end_backend_session(app: &Arc<App>, bridge: &Bridge) {
    let has_session = bridge
        .backend
        .lock()
        .map(|b| b.0.is_some())
        .unwrap_or(false);
    if has_session {
        let head = head(app, bridge, "DELETE", String::new(), new_request_id());
        let mut audit = OnBehalf::new(&head, &bridge.id);
        if audit.ahead(app).await {
            let ended = exchange(&bridge.tunnel.conn, &head, Bytes::new()).await;
            audit.finish(app, ended.ok().map(|(h, _)| h.status));
        }
    }
}
