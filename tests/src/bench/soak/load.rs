//! The soak's load: paced workers of each kind, and the tally of what they did.
//!
//! Every worker is paced (a fixed rate, no catch-up bursts after a stall), so the load is the
//! same at minute 1 and minute 30 and what grows is the gateway's, not the load's. A worker
//! that fails reconnects (and opens a new session), as a real client does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::client::{
    base_headers, connect, hv, open_session, send, Caller, Sender, Target, LEGACY, REQUEST_TIMEOUT,
};
use crate::hist::Hist;
use crate::plan::{Era, SMALL};

/// 100-byte `tools/call`s, legacy era (a session per worker; churned sessions' calls too).
pub(crate) const SMALL_LEGACY: &str = "small_legacy";
/// 100-byte `tools/call`s, 2026-07-28 (stateless).
pub(crate) const SMALL_MODERN: &str = "small_modern";
/// 1 MiB results, both eras.
pub(crate) const LARGE: &str = "large";
/// Legacy sessions opened: `initialize` + `notifications/initialized`.
pub(crate) const SESSION: &str = "session";
/// GET event streams: latency until the response head; a success is a stream held for as
/// long as the client wanted, then closed by the client.
pub(crate) const STREAM: &str = "stream";
/// A call the policy denies (every generation of it): a success is the edge's 403.
pub(crate) const DENIED: &str = "denied";
/// Sessions ended with DELETE.
pub(crate) const DELETE: &str = "delete";
/// Every kind, in table order.
pub(crate) const KINDS: [&str; 7] = [
    SMALL_LEGACY,
    SMALL_MODERN,
    LARGE,
    SESSION,
    STREAM,
    DENIED,
    DELETE,
];

/// What one kind of operation did over some time.
#[derive(Clone)]
pub(crate) struct Kind {
    pub(crate) hist: Hist,
    pub(crate) ok: u64,
    /// Failures while a connector restart was under way (or just after): expected.
    pub(crate) restart_errors: u64,
    /// Failures at any other time: each one a defect to explain.
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl Kind {
    fn new() -> Kind {
        Kind {
            hist: Hist::new(),
            ok: 0,
            restart_errors: 0,
            errors: 0,
            first_error: None,
        }
    }

    pub(crate) fn merge(&mut self, o: &Kind) {
        self.hist.merge(&o.hist);
        self.ok += o.ok;
        self.restart_errors += o.restart_errors;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
    }
}

/// Every kind's figures over some time.
#[derive(Clone)]
pub(crate) struct Tally(pub(crate) BTreeMap<&'static str, Kind>);

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally(KINDS.iter().map(|k| (*k, Kind::new())).collect())
    }

    pub(crate) fn kind(&self, name: &str) -> &Kind {
        // Every kind is present from `new`.
        &self.0[name]
    }

    pub(crate) fn merge(&mut self, o: &Tally) {
        for (name, k) in &o.0 {
            self.0.entry(name).or_insert_with(Kind::new).merge(k);
        }
    }
}

/// What the workers and the controller share.
pub(crate) struct Shared {
    tally: Mutex<Tally>,
    /// Set by the controller from a connector's SIGTERM until shortly after its successor is
    /// up: failures then are expected.
    pub(crate) restarting: AtomicBool,
    /// Set when the soak must end early (the controller failed).
    pub(crate) stop: AtomicBool,
    pub(crate) end: Instant,
}

impl Shared {
    pub(crate) fn new(end: Instant) -> Shared {
        Shared {
            tally: Mutex::new(Tally::new()),
            restarting: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            end,
        }
    }

    pub(crate) fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.end
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut t)
    }

    fn ok(&self, kind: &'static str, took: Duration) {
        self.with(|t| {
            if let Some(k) = t.0.get_mut(kind) {
                k.hist.record(took.as_nanos() as u64);
                k.ok += 1;
            }
        });
    }

    fn fail(&self, kind: &'static str, error: String) {
        let restart = self.restarting.load(Ordering::Relaxed);
        self.with(|t| {
            if let Some(k) = t.0.get_mut(kind) {
                if restart {
                    k.restart_errors += 1;
                } else {
                    k.errors += 1;
                    k.first_error.get_or_insert(error);
                }
            }
        });
    }

    /// The tally since the last call, and a fresh one in its place.
    pub(crate) fn take(&self) -> Tally {
        self.with(|t| std::mem::replace(t, Tally::new()))
    }
}

/// A fixed rate: each wait ends one period after the last; a late worker starts again from
/// now instead of bursting to catch up.
struct Pace {
    period: Duration,
    next: Instant,
}

impl Pace {
    /// `None` for a rate of zero (the worker does nothing). `phase` (0..1) spreads workers of
    /// one kind over the period.
    fn new(rate: f64, phase: f64) -> Option<Pace> {
        if rate.is_nan() || rate <= 0.0 {
            return None;
        }
        let period = Duration::from_secs_f64(1.0 / rate);
        Some(Pace {
            period,
            next: Instant::now() + period.mul_f64(phase.clamp(0.0, 1.0)),
        })
    }

    /// Waits for the next slot; false once the soak is over.
    async fn wait(&mut self, shared: &Shared) -> bool {
        let now = Instant::now();
        if self.next < now {
            self.next = now;
        }
        tokio::time::sleep_until(self.next.min(shared.end).into()).await;
        self.next += self.period;
        shared.running()
    }
}

/// After a failure: a short pause, so that a worker does not spin while the tunnel is down.
async fn back_off(shared: &Shared) {
    let until = (Instant::now() + Duration::from_millis(100)).min(shared.end);
    tokio::time::sleep_until(until.into()).await;
}

/// Paced `tools/call`s of `payload` bytes at `rate` per second over one connection (and, in
/// the legacy era, one session), counted as `kind`.
pub(crate) async fn caller(
    shared: Arc<Shared>,
    t: Arc<Target>,
    era: Era,
    payload: usize,
    kind: &'static str,
    rate: f64,
    phase: f64,
) {
    let Some(mut pace) = Pace::new(rate, phase) else {
        return;
    };
    while shared.running() {
        let setup = async {
            let mut s = connect(t.addr).await?;
            let c = Caller::new(&mut s, &t, era, payload).await?;
            Ok::<_, String>((s, c))
        };
        let (mut s, mut c) = match setup.await {
            Ok(x) => x,
            Err(e) => {
                shared.fail(kind, format!("connection or session: {e}"));
                back_off(&shared).await;
                continue;
            }
        };
        // The first answer of each connection is parsed and checked whole.
        let mut verified = false;
        while pace.wait(&shared).await {
            let t0 = Instant::now();
            match c.call(&mut s, &t, !verified).await {
                Ok(_) => {
                    verified = true;
                    shared.ok(kind, t0.elapsed());
                }
                Err(e) => {
                    shared.fail(kind, e);
                    break;
                }
            }
        }
        c.close(&mut s, &t).await;
    }
}

/// Sessions opened and ended at `rate` per second, each on a new connection: `initialize`,
/// one call, one call the policy denies (403), DELETE.
pub(crate) async fn churner(shared: Arc<Shared>, t: Arc<Target>, rate: f64, phase: f64) {
    let Some(mut pace) = Pace::new(rate, phase) else {
        return;
    };
    while pace.wait(&shared).await {
        if let Err((kind, e)) = churn_once(&shared, &t).await {
            shared.fail(kind, e);
        }
    }
}

async fn churn_once(shared: &Shared, t: &Target) -> Result<(), (&'static str, String)> {
    let t0 = Instant::now();
    let mut s = connect(t.addr).await.map_err(|e| (SESSION, e))?;
    let mut c = Caller::new(&mut s, t, Era::Legacy, SMALL)
        .await
        .map_err(|e| (SESSION, e))?;
    shared.ok(SESSION, t0.elapsed());
    let t1 = Instant::now();
    c.call(&mut s, t, true)
        .await
        .map_err(|e| (SMALL_LEGACY, e))?;
    shared.ok(SMALL_LEGACY, t1.elapsed());
    let t2 = Instant::now();
    let denied = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"soak-delete","arguments":{}}}"#;
    let r = send(
        &mut s,
        t,
        Method::POST,
        &c.headers,
        Bytes::from_static(denied.as_bytes()),
        false,
    )
    .await
    .map_err(|e| (DENIED, e))?;
    if r.status != StatusCode::FORBIDDEN {
        return Err((
            DENIED,
            format!(
                "a call every policy generation denies got HTTP {}",
                r.status
            ),
        ));
    }
    shared.ok(DENIED, t2.elapsed());
    let sid = c.session.clone().unwrap_or_default();
    delete(shared, &mut s, t, &sid).await
}

/// DELETE of a session; a success is any 2xx.
async fn delete(
    shared: &Shared,
    s: &mut Sender,
    t: &Target,
    sid: &str,
) -> Result<(), (&'static str, String)> {
    let t0 = Instant::now();
    let mut h = base_headers();
    h.push(("mcp-session-id", hv(sid)));
    h.push(("mcp-protocol-version", HeaderValue::from_static(LEGACY)));
    let r = send(s, t, Method::DELETE, &h, Bytes::new(), false)
        .await
        .map_err(|e| (DELETE, e))?;
    if !r.status.is_success() {
        return Err((DELETE, format!("DELETE: HTTP {}", r.status)));
    }
    shared.ok(DELETE, t0.elapsed());
    Ok(())
}

/// One event stream after another: a session, a GET event stream held for a random half to
/// all of `hold`, closed by the client, the session deleted.
pub(crate) async fn stream_holder(shared: Arc<Shared>, t: Arc<Target>, hold: Duration, seed: u64) {
    let mut rng = seed | 1;
    while shared.running() {
        // xorshift64: a spread of hold times without a dependency.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let hold_for = hold.mul_f64(0.5 + 0.5 * (rng % 1000) as f64 / 1000.0);
        if let Err((kind, e)) = hold_once(&shared, &t, hold_for).await {
            shared.fail(kind, e);
            back_off(&shared).await;
        }
    }
}

async fn hold_once(
    shared: &Shared,
    t: &Target,
    hold_for: Duration,
) -> Result<(), (&'static str, String)> {
    let t0 = Instant::now();
    let mut s = connect(t.addr).await.map_err(|e| (SESSION, e))?;
    let sid = open_session(&mut s, t).await.map_err(|e| (SESSION, e))?;
    shared.ok(SESSION, t0.elapsed());
    let t1 = Instant::now();
    let (stream_conn, resp) = open_stream(t, &sid).await.map_err(|e| (STREAM, e))?;
    let opened = t1.elapsed();
    let deadline = (Instant::now() + hold_for).min(shared.end);
    let mut body = resp.into_body();
    // Keep-alive comments may arrive; the stream must stay open until the client closes it.
    let cut = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => break None,
            f = body.frame() => match f {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break Some(format!(
                    "event stream broke after {:.1} s: {e}", t1.elapsed().as_secs_f64()
                )),
                None => break Some(format!(
                    "event stream ended by the edge after {:.1} s", t1.elapsed().as_secs_f64()
                )),
            }
        }
    };
    drop(body);
    drop(stream_conn);
    match cut {
        None => shared.ok(STREAM, opened),
        Some(e) => shared.fail(STREAM, e),
    }
    delete(shared, &mut s, t, &sid).await
}

/// A GET event stream of session `sid` on a connection of its own; the response head read.
async fn open_stream(
    t: &Target,
    sid: &str,
) -> Result<(Sender, hyper::Response<hyper::body::Incoming>), String> {
    let mut s = connect(t.addr).await?;
    s.ready().await.map_err(|e| e.to_string())?;
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(t.path.as_str())
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let h = req.headers_mut();
    h.insert(http::header::HOST, t.host.clone());
    h.insert("accept", HeaderValue::from_static("text/event-stream"));
    h.insert("mcp-session-id", hv(sid));
    h.insert("mcp-protocol-version", HeaderValue::from_static(LEGACY));
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, s.send_request(req))
        .await
        .map_err(|_| "GET event stream timed out".to_string())?
        .map_err(|e| format!("GET event stream: {e}"))?;
    if resp.status() != StatusCode::OK {
        return Err(format!("GET event stream: HTTP {}", resp.status()));
    }
    Ok((s, resp))
}
