//! Writes a request's audit line when its response has been sent in full, cut short, or
//! dropped: latency and bytes out then cover the whole exchange, streamed events included.
//! Every answer of the client listener gets one, refusals included, and its `outcome`
//! always agrees with the status the client got. A request whose client went away before
//! there was an answer at all (a backend still working) gets one too: [`PendingRecord`].

use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use underpass_mcp::jsonrpc::code;

use crate::admin::feed::Feed;
use crate::app::App;
use crate::http::body::{Body, BodyError};
use crate::http::conn::ConnInfo;
use crate::http::ids::new_request_id;
use crate::http::respond::error_response;
use crate::http::router::{route, Route};
use crate::http::trace::RequestTrace;
use crate::mcp::mediate::MediationLog;
use crate::metrics::RequestMetrics;
use underpass_audit::{AuditRecord, Auditor, Decision, Outcome};
use underpass_proto::frame::RequestHead;
use underpass_shared::telemetry::Tracer;

/// Longest request path an audit record keeps.
const MAX_PATH: usize = 256;

/// The audit line of a request, before anything is decided: who connected from where, the
/// method, the trace id, and the service it names (or, when it names none, its path).
pub fn request_record(
    conn: &ConnInfo,
    parts: &http::request::Parts,
    trace: &RequestTrace,
) -> AuditRecord {
    let path = parts.uri.path();
    let (service, path) = match route(path) {
        Route::Service(s) | Route::LegacySse(s) => (Some(s.to_owned()), None),
        _ => {
            let mut cut = path.len().min(MAX_PATH);
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            (None, Some(path[..cut].to_owned()))
        }
    };
    AuditRecord {
        service,
        path,
        source: conn.peer.map(|a| a.ip().to_canonical().to_string()),
        http_method: Some(parts.method.as_str().to_owned()),
        trace_id: Some(trace.trace_id()),
        request_id: Some(new_request_id()),
        outcome: Outcome::Ok,
        ..AuditRecord::default()
    }
}

/// A request's audit record while its handler works on an answer. Handed over with the
/// answer ([`PendingRecord::take`], then [`audited`]); if the handler is dropped first (the
/// client hung up while the request was still in the edge: its body being read, or its
/// exchange waiting for a backend that has not answered), the record is written on drop,
/// with outcome `client_gone` and no status, since the client got none.
pub struct PendingRecord {
    record: AuditRecord,
    /// The request's trace: its spans are recorded with the record.
    pub trace: RequestTrace,
    /// What policy obligations do to the answer as it streams: added to the record when it
    /// is written.
    pub mediation: MediationLog,
    sink: Sink,
    started: Instant,
    handed_over: bool,
}

impl PendingRecord {
    pub fn new(app: &App, record: AuditRecord, trace: RequestTrace, started: Instant) -> Self {
        PendingRecord {
            record,
            trace,
            mediation: MediationLog::default(),
            sink: Sink::of(app),
            started,
            handed_over: false,
        }
    }

    /// Takes `_meta.traceparent` of the request as its trace, unless its headers named one.
    pub fn adopt_meta_trace(&mut self, traceparent: &str) {
        if self.trace.adopt_meta(traceparent) {
            self.record.trace_id = Some(self.trace.trace_id());
        }
    }
}

impl Deref for PendingRecord {
    type Target = AuditRecord;

    fn deref(&self) -> &AuditRecord {
        &self.record
    }
}

impl DerefMut for PendingRecord {
    fn deref_mut(&mut self) -> &mut AuditRecord {
        &mut self.record
    }
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        let mut record = std::mem::take(&mut self.record);
        record.outcome = Outcome::ClientGone;
        record.http_status = None;
        record.jsonrpc_error = None;
        record.bytes_out = Some(0);
        take_mediation(&self.mediation, &mut record);
        self.sink.done(record, self.started, &self.trace);
    }
}

/// Moves what obligations did into the record.
fn take_mediation(log: &MediationLog, record: &mut AuditRecord) {
    if let Ok(mut log) = log.lock() {
        record.mediation.append(&mut log);
    }
}

/// Where an ended request's record goes: the metrics always, the audit log and the spans
/// when configured.
#[derive(Clone)]
struct Sink {
    auditor: Option<Auditor>,
    metrics: Arc<RequestMetrics>,
    feed: Arc<Feed>,
    access_log: bool,
    tracer: Tracer,
}

impl Sink {
    fn of(app: &App) -> Sink {
        Sink {
            auditor: app.auditor.clone(),
            metrics: app.requests.clone(),
            feed: app.feed.clone(),
            access_log: app.config.access_log,
            tracer: app.tracer.clone(),
        }
    }

    /// Sets the latency, counts the request, logs its access line, records its spans, writes
    /// its audit lines.
    fn done(&self, mut record: AuditRecord, started: Instant, trace: &RequestTrace) {
        let took = started.elapsed();
        record.latency_us = Some(took.as_micros() as u64);
        if self.tracer.is_on() && trace.sampled() {
            for span in trace.spans(&record, took) {
                self.tracer.record(&span);
            }
        }
        // The access line before the count: whoever sees the count can read the line.
        if self.access_log {
            access_log(&record);
        }
        self.metrics.request_done(&record, started, took);
        self.feed.request_done(&record, took);
        if let Some(auditor) = &self.auditor {
            for line in record.into_lines() {
                auditor.record(line);
            }
        }
    }
}

/// With `[audit] on_failure = "refuse"`, the 503 for a request that could not be audited
/// now (records cannot be written, or the queue to the writer is full); `None` to go on.
pub fn refuse_unaudited(app: &App, audit: &mut AuditRecord) -> Option<Response<Body>> {
    let auditor = app.auditor.as_ref()?;
    if auditor.accepting() {
        return None;
    }
    Some(unaudited(audit))
}

/// With `[audit] write_ahead` (the default), the request's `dispatched` lines go on the log
/// before it goes down a tunnel, so that an edge killed while a backend works on it still
/// leaves a record. The 503 to answer instead when they could not be written and the edge
/// refuses what it cannot audit; `None` to go on.
pub async fn write_ahead(app: &App, audit: &mut AuditRecord) -> Option<Response<Body>> {
    let auditor = app.auditor.as_ref()?;
    if auditor.write_ahead(audit).await {
        return None;
    }
    Some(unaudited(audit))
}

/// The audit of an exchange the edge starts itself on a client's behalf (the `DELETE` that
/// ends an expired session at its backend; the 2024-11-05 bridge's `GET` stream and its
/// `DELETE`): lines like a client request's, written ahead the same way, with the principal
/// it acts for and no `source`.
pub struct OnBehalf {
    record: AuditRecord,
    started: Instant,
}

impl OnBehalf {
    pub fn new(head: &RequestHead, session: &str) -> Self {
        OnBehalf {
            record: AuditRecord {
                principal: Some(head.principal.clone()),
                service: Some(head.service.clone()),
                http_method: Some(head.method.clone()),
                session: Some(session.to_owned()),
                trace_id: Some(head.trace_id.clone()).filter(|t| !t.is_empty()),
                request_id: Some(head.request_id.clone()),
                decision: Some(Decision::Allow),
                rule: Some("edge".into()),
                ..AuditRecord::default()
            },
            started: Instant::now(),
        }
    }

    /// The record, for a sender that writes its `dispatched` lines itself
    /// (`failover::send`).
    pub fn record(&mut self) -> &mut AuditRecord {
        &mut self.record
    }

    /// The `dispatched` line; false when it could not be written and the edge refuses what
    /// it cannot audit: then the exchange must not be sent.
    pub async fn ahead(&mut self, app: &App) -> bool {
        write_ahead(app, &mut self.record).await.is_none()
    }

    /// The line with the outcome: the backend's status, or `None` when the exchange failed.
    pub fn finish(mut self, app: &App, status: Option<u16>) {
        let Some(auditor) = &app.auditor else {
            return;
        };
        self.record.http_status = status;
        self.record.outcome = match status {
            Some(s) => Outcome::of_status(s).unwrap_or(Outcome::Ok),
            None => Outcome::TunnelError,
        };
        self.record.latency_us = Some(self.started.elapsed().as_micros() as u64);
        auditor.record(self.record);
    }
}

/// One line per request under the target `underpass::access` (with `access_log = true`):
/// the audit record's fields without the call's arguments and the session id (a capability).
/// Control characters in strings a client chose are escaped, so none can start a line of its
/// own in a text log.
fn access_log(record: &AuditRecord) {
    let text = |v: &Option<String>| -> String {
        match v.as_deref() {
            None => "-".to_owned(),
            Some(s) if s.chars().any(char::is_control) => s.escape_debug().to_string(),
            Some(s) => s.to_owned(),
        }
    };
    tracing::info!(
        target: "underpass::access",
        outcome = record.outcome.as_str(),
        status = record.http_status.unwrap_or(0),
        service = %text(&record.service),
        method = %text(&record.mcp_method),
        target = %text(&record.target),
        principal = %text(&record.principal),
        decision = match record.decision {
            Some(Decision::Allow) => "allow",
            Some(Decision::Deny) => "deny",
            None => "-",
        },
        rule = %text(&record.rule),
        latency_us = record.latency_us.unwrap_or(0),
        bytes_in = record.bytes_in.unwrap_or(0),
        bytes_out = record.bytes_out.unwrap_or(0),
        source = %text(&record.source),
        trace_id = %text(&record.trace_id),
        request_id = %text(&record.request_id),
        "request"
    );
}

fn unaudited(audit: &mut AuditRecord) -> Response<Body> {
    audit.outcome = Outcome::AuditUnavailable;
    let mut resp = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        code::UNAVAILABLE,
        "the audit log cannot be written at the moment, and this edge refuses requests it \
         cannot audit ([audit] on_failure = \"refuse\"); retry later",
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(5u32));
    resp
}

/// The response, counting the request and writing its audit record (when an audit log is
/// configured) and spans (when traces are exported) when its body ends.
pub fn audited(resp: Response<Body>, mut pending: PendingRecord) -> Response<Body> {
    pending.handed_over = true;
    let record = std::mem::take(&mut pending.record);
    let trace = pending.trace.clone();
    let mediation = pending.mediation.clone();
    wrap(
        resp,
        record,
        trace,
        mediation,
        pending.started,
        pending.sink.clone(),
    )
}

struct Audited {
    inner: Body,
    event_stream: Option<crate::metrics::EventStream>,
    record: Option<AuditRecord>,
    mediation: MediationLog,
    trace: RequestTrace,
    bytes_out: u64,
    started: Instant,
    sink: Sink,
}

fn wrap(
    resp: Response<Body>,
    mut record: AuditRecord,
    trace: RequestTrace,
    mediation: MediationLog,
    started: Instant,
    sink: Sink,
) -> Response<Body> {
    record.http_status = Some(resp.status().as_u16());
    // A refusal whose handler said nothing more specific than "ok" still never reads "ok".
    if record.outcome == Outcome::Ok {
        if let Some(outcome) = Outcome::of_status(resp.status().as_u16()) {
            record.outcome = outcome;
        }
    }
    // Counted as an open event stream until its body ends or the client leaves.
    let event_stream = crate::http::media::is_event_stream(resp.headers())
        .then(|| sink.metrics.event_stream(record.service.as_deref()));
    let (parts, inner) = resp.into_parts();
    let body = Audited {
        inner,
        event_stream,
        record: Some(record),
        mediation,
        trace,
        bytes_out: 0,
        started,
        sink,
    };
    Response::from_parts(parts, UnsyncBoxBody::new(body))
}

impl Audited {
    fn finish(&mut self, failed: bool) {
        self.event_stream = None;
        if let Some(mut record) = self.record.take() {
            record.bytes_out = Some(self.bytes_out);
            take_mediation(&self.mediation, &mut record);
            if failed && record.outcome == Outcome::Ok {
                record.outcome = Outcome::StreamError;
            }
            self.sink.done(record, self.started, &self.trace);
        }
    }
}

impl HttpBody for Audited {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes_out += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(true),
            Poll::Ready(None) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        // Dropped before its end: the client went away mid-response.
        let cut_short = !self.inner.is_end_stream();
        if cut_short {
            if let Some(r) = self.record.as_mut() {
                if r.outcome == Outcome::Ok {
                    r.outcome = Outcome::ClientGone;
                }
            }
        }
        self.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_names_the_service_or_else_the_path() {
        let conn = ConnInfo {
            peer: Some("[::ffff:10.1.2.3]:4242".parse().expect("addr")),
            ..ConnInfo::default()
        };
        let parts = |uri: &str| {
            http::Request::builder()
                .method("PUT")
                .uri(uri)
                .body(())
                .expect("request")
                .into_parts()
                .0
        };
        let trace = RequestTrace::of(&http::HeaderMap::new());
        let r = request_record(&conn, &parts("/mcp/everything"), &trace);
        assert_eq!(r.service.as_deref(), Some("everything"));
        assert_eq!(r.path, None);
        assert_eq!(r.source.as_deref(), Some("10.1.2.3"));
        assert_eq!(r.http_method.as_deref(), Some("PUT"));
        let r = request_record(&conn, &parts(&format!("/{}", "a".repeat(300))), &trace);
        assert_eq!(r.service, None);
        assert!(r.path.is_some_and(|p| p.len() <= MAX_PATH));
    }
}
