//! Idle legacy sessions: the resident memory of edge and connector as sessions (and,
//! optionally, their GET event streams) pile up.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Request, StatusCode};
use http_body_util::Full;

use crate::client::{connect, hv, open_session, Caller, Sender, Target, LEGACY, REQUEST_TIMEOUT};
use crate::plan::{Era, Plan, SMALL};
use crate::procfs::rss_kib;
use crate::stack::Stack;

/// Environment of the fresh edge and connector of the sessions phase. mimalloc backs its heap
/// with 2 MiB transparent huge pages by default, so RSS moves in 2 MiB steps (and a fresh
/// daemon sits at ~27 MiB instead of ~12): steps that would swamp a growth of about a KiB per
/// session. With 4 KiB pages RSS follows what the sessions really hold.
pub(crate) const SESSIONS_ENV: &[(&str, &str)] = &[("MIMALLOC_ALLOW_THP", "0")];

pub(crate) struct SessionRow {
    pub(crate) count: usize,
    pub(crate) streams: bool,
    pub(crate) edge_kib: u64,
    pub(crate) connector_kib: u64,
    pub(crate) backend_kib: u64,
    pub(crate) seconds: f64,
}

/// Opens `n` sessions over the given connections; returns the connections and the session ids.
pub(crate) async fn open_sessions(
    senders: Vec<Sender>,
    t: &Target,
    n: usize,
) -> Result<(Vec<Sender>, Vec<String>), String> {
    let per = n.div_ceil(senders.len().max(1));
    let mut set = tokio::task::JoinSet::new();
    let mut left = n;
    for mut s in senders {
        let k = per.min(left);
        left -= k;
        let t = t.clone();
        set.spawn(async move {
            let mut ids = Vec::with_capacity(k);
            for _ in 0..k {
                ids.push(open_session(&mut s, &t).await?);
            }
            Ok::<_, String>((s, ids))
        });
    }
    let mut all = Vec::with_capacity(n);
    let mut back = Vec::new();
    while let Some(r) = set.join_next().await {
        let (s, ids) = r.map_err(|e| e.to_string())??;
        back.push(s);
        all.extend(ids);
    }
    Ok((back, all))
}

/// Holds a GET event stream open for each session; returns the open responses.
pub(crate) async fn open_streams(
    t: &Target,
    ids: &[String],
) -> Result<Vec<(Sender, hyper::Response<hyper::body::Incoming>)>, String> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let t = t.clone();
            let id = id.clone();
            set.spawn(async move {
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
                h.insert("mcp-session-id", hv(&id));
                h.insert("mcp-protocol-version", HeaderValue::from_static(LEGACY));
                let resp = tokio::time::timeout(REQUEST_TIMEOUT, s.send_request(req))
                    .await
                    .map_err(|_| "GET timed out".to_string())?
                    .map_err(|e| e.to_string())?;
                if resp.status() != StatusCode::OK {
                    return Err(format!("GET event stream: HTTP {}", resp.status()));
                }
                Ok((s, resp))
            });
        }
        while let Some(r) = set.join_next().await {
            out.push(r.map_err(|e| e.to_string())??);
        }
    }
    Ok(out)
}

pub(crate) fn settle_rss(pid: u32) -> u64 {
    // Let background frees and lazily touched pages settle.
    std::thread::sleep(Duration::from_millis(300));
    rss_kib(pid)
}

pub(crate) fn sessions_phase(
    rt: &tokio::runtime::Runtime,
    stack: &Stack,
    counts: &[usize],
    streams: bool,
) -> Result<Vec<SessionRow>, String> {
    let t = stack.tunnel();
    const CONNS: usize = 32;
    // Connections (and the edge's per-connection state) exist before the baseline, and are
    // warmed with stateless calls, so the growth measured is the sessions' own.
    let mut senders = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..CONNS {
            let mut s = connect(t.addr).await?;
            let mut c = Caller::new(&mut s, &t, Era::Modern, SMALL).await?;
            for _ in 0..20 {
                c.call(&mut s, &t, false).await?;
            }
            v.push(s);
        }
        Ok::<_, String>(v)
    })?;
    let (e, c, b) = (stack.edge.pid(), stack.connector.pid(), stack.backend.pid());
    let mut rows = vec![SessionRow {
        count: 0,
        streams,
        edge_kib: settle_rss(e),
        connector_kib: rss_kib(c),
        backend_kib: rss_kib(b),
        seconds: 0.0,
    }];
    let mut open = 0;
    let mut held = Vec::new();
    for &count in counts {
        if count <= open {
            continue;
        }
        let started = Instant::now();
        let (back, ids) = rt.block_on(open_sessions(
            std::mem::take(&mut senders),
            &t,
            count - open,
        ))?;
        senders = back;
        if streams {
            held.extend(rt.block_on(open_streams(&t, &ids))?);
        }
        let seconds = started.elapsed().as_secs_f64();
        open = count;
        rows.push(SessionRow {
            count,
            streams,
            edge_kib: settle_rss(e),
            connector_kib: rss_kib(c),
            backend_kib: rss_kib(b),
            seconds,
        });
        eprintln!(
            "  {count} idle sessions{}: edge {} KiB, connector {} KiB ({seconds:.1} s to open)",
            if streams { " with event streams" } else { "" },
            rows.last().map_or(0, |r| r.edge_kib),
            rows.last().map_or(0, |r| r.connector_kib),
        );
    }
    drop(held);
    Ok(rows)
}

/// The sessions phase: idle sessions without, and with `--session-streams` also with, a GET
/// event stream each, on fresh edge and connector processes unless `plan` says otherwise.
/// Returns the rows, and the last error, if any.
pub(crate) fn run_phase(
    rt: &tokio::runtime::Runtime,
    stack: &mut Stack,
    plan: &Plan,
    with_streams: bool,
) -> (Vec<SessionRow>, Option<String>) {
    let mut sessions: Vec<SessionRow> = Vec::new();
    let mut session_error = None;
    let mut variants = vec![false];
    if with_streams {
        variants.push(true);
    }
    for streams in variants {
        if plan.fresh_for_sessions {
            // Fresh processes: earlier phases leave allocator caches that would hide growth.
            stack.fresh_tunnel(SESSIONS_ENV);
        }
        match sessions_phase(rt, stack, &plan.sessions, streams) {
            Ok(r) => sessions.extend(r),
            Err(e) => {
                eprintln!("  sessions failed: {e}");
                session_error = Some(e);
            }
        }
    }
    (sessions, session_error)
}
