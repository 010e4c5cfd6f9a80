//! Stdio backends against the real `@modelcontextprotocol/server-everything` in stdio mode
//! (installed by `tests/peers/install.sh`), plus a few deliberately broken servers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests stop at the first failure

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use underpass_connector::backends::stdio::{ProcessOpener, StdioBackend};
use underpass_connector::config::SessionLimits;

mod common;
use common::*;

/// The version initialize asks for (server-everything echoes it).
const PROTOCOL: &str = "2025-11-25";
const TAG_VAR: &str = "UNDERPASS_STDIO_TEST_TAG";

/// A service running server-everything; `tag` marks its processes' environment so tests can
/// find their pids (and it checks that `env` reaches the process).
fn everything(tag: &str, limits: SessionLimits) -> StdioBackend {
    let env = BTreeMap::from([(TAG_VAR.to_owned(), tag.to_owned())]);
    let command = vec![peer("NODE22"), peer("SERVER_EVERYTHING"), "stdio".into()];
    StdioBackend::new("everything", ProcessOpener::new(command, env, None), limits)
}

fn command_service(command: &[&str], limits: SessionLimits) -> StdioBackend {
    let command = command.iter().map(|s| s.to_string()).collect();
    StdioBackend::new(
        "broken",
        ProcessOpener::new(command, BTreeMap::new(), None),
        limits,
    )
}

fn new_tag() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Pids of live processes whose environment carries our tag.
fn pids_with_tag(tag: &str) -> Vec<u32> {
    let needle = format!("{TAG_VAR}={tag}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn the_pid(tag: &str) -> u32 {
    let pids = pids_with_tag(tag);
    assert_eq!(pids.len(), 1, "exactly one process tagged {tag}: {pids:?}");
    pids[0]
}

#[tokio::test]
async fn stdio_session_lifecycle_against_server_everything() {
    let tag = new_tag();
    let svc = everything(&tag, SessionLimits::default());
    let session = open_session(&svc, PROTOCOL).await;
    assert_eq!(svc.session_count(), 1);

    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let msgs = sse_body(post(&svc, Some(&session), ACCEPT_BOTH, list).await).await;
    let names: Vec<&str> = msgs.last().unwrap()["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"trigger-long-running-operation"),
        "{names:?}"
    );

    let list = json!({"jsonrpc": "2.0", "id": "two", "method": "tools/list"});
    let resp = post(&svc, Some(&session), ACCEPT_JSON, list).await;
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    let v = json_body(resp).await;
    assert_eq!(v["id"], "two");
    assert!(v["result"]["tools"]
        .as_array()
        .is_some_and(|t| t.len() >= 13));

    let echo = tool_call(3, "echo", json!({"message": "through the tunnel"}));
    let msgs = sse_body(post(&svc, Some(&session), ACCEPT_BOTH, echo).await).await;
    let answer = msgs.last().unwrap();
    assert_eq!(answer["id"], 3);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "Echo: through the tunnel"
    );

    let pid = the_pid(&tag);
    let resp = delete(&svc, &session).await;
    assert!(
        resp.status == 200 || resp.status == 204,
        "DELETE: {}",
        resp.status
    );
    assert!(!alive(pid), "process {pid} still exists after DELETE");
    assert_eq!(svc.session_count(), 0);

    let ping = json!({"jsonrpc": "2.0", "id": 4, "method": "ping"});
    let resp = post(&svc, Some(&session), ACCEPT_BOTH, ping).await;
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn stdio_progress_events_arrive_before_the_result() {
    let svc = everything(&new_tag(), SessionLimits::default());
    check_progress_streams_before_result(&svc, PROTOCOL).await;
}

#[tokio::test]
async fn stdio_get_stream_delivers_session_notifications_and_is_exclusive() {
    let svc = everything(&new_tag(), SessionLimits::default());
    let session = open_session(&svc, PROTOCOL).await;
    let resp = get(&svc, &session).await;
    assert_eq!(resp.status, 200);
    assert_eq!(header(&resp, "x-accel-buffering"), Some("no"));
    let mut events = EventReader::new(resp);
    // server-everything announces tools/list_changed at start, before anyone listens: it waited.
    let first = events.next().await.expect("a backlog event");
    assert_eq!(first["method"], "notifications/tools/list_changed");

    let second = get(&svc, &session).await;
    assert_eq!(second.status, 409);
    drop(events);
    let third = get(&svc, &session).await;
    assert_eq!(
        third.status, 200,
        "the stream slot is free once the first GET is gone"
    );
    drop(third);
    delete(&svc, &session).await;
}

#[tokio::test]
async fn stdio_unknown_or_missing_sessions() {
    let svc = everything(&new_tag(), SessionLimits::default());
    check_unknown_or_missing_sessions(&svc).await;
    let resp = svc
        .exchange(
            PRINCIPAL,
            "POST",
            &headers(None, ACCEPT_BOTH),
            Bytes::from_static(b"{nope"),
        )
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(json_body(resp).await["error"]["code"], -32700);
    let resp = svc
        .exchange(PRINCIPAL, "PUT", &headers(None, ACCEPT_BOTH), Bytes::new())
        .await;
    assert_eq!(resp.status, 405);
    assert_eq!(svc.session_count(), 0, "nothing was spawned");
}

#[tokio::test]
async fn stdio_process_cap_answers_503() {
    let svc = everything(
        &new_tag(),
        SessionLimits {
            max_processes: 1,
            ..SessionLimits::default()
        },
    );
    let first = open_session(&svc, PROTOCOL).await;
    // Another principal: the service-wide cap, not a per-caller one.
    let resp = post_as(
        &svc,
        "client:other",
        None,
        ACCEPT_BOTH,
        init_request(PROTOCOL),
    )
    .await;
    assert_eq!(resp.status, 503);
    assert!(header(&resp, "retry-after").is_some(), "{resp:?}");
    let v = json_body(resp).await;
    let msg = rpc_error_message(&v);
    assert!(
        msg.contains("limit of 1") && msg.contains("DELETE") && msg.contains("`max_processes`"),
        "{msg}"
    );
    assert_eq!(
        v["error"]["code"],
        underpass_mcp::jsonrpc::code::UNAVAILABLE
    );
    delete(&svc, &first).await;
    let again = open_session(&svc, PROTOCOL).await;
    delete(&svc, &again).await;
}

/// One principal cannot take every process: beyond its share its `initialize` gets 429, while
/// other principals still get sessions; and a session is usable only by its principal.
#[tokio::test]
async fn stdio_per_principal_process_cap() {
    let svc = everything(
        &new_tag(),
        SessionLimits {
            max_processes: 3,
            max_processes_per_principal: 1,
            ..SessionLimits::default()
        },
    );
    let alice = open_session(&svc, PROTOCOL).await;
    let resp = post(&svc, None, ACCEPT_BOTH, init_request(PROTOCOL)).await;
    assert_eq!(resp.status, 429);
    assert_eq!(header(&resp, "retry-after"), Some("5"));
    let v = json_body(resp).await;
    assert_eq!(
        v["error"]["code"],
        underpass_mcp::jsonrpc::code::RATE_LIMITED,
        "{v}"
    );
    assert_eq!(v["error"]["data"]["retryAfterSeconds"], 5, "{v}");
    let msg = rpc_error_message(&v);
    assert!(msg.contains("max_processes_per_principal"), "{msg}");
    assert_eq!(
        svc.session_count(),
        1,
        "the refused initialize spawned nothing"
    );

    let resp = post_as(
        &svc,
        "client:bob",
        None,
        ACCEPT_BOTH,
        init_request(PROTOCOL),
    )
    .await;
    assert_eq!(resp.status, 200, "another principal still gets a process");
    let bob = header(&resp, "mcp-session-id").expect("session").to_owned();
    drop(resp);
    assert_eq!(svc.session_count_of("client:bob"), 1);
    assert_eq!(svc.session_count_of(PRINCIPAL), 1);

    // Bob's session is not Alice's to use or to close.
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    assert_eq!(
        post(&svc, Some(&bob), ACCEPT_BOTH, ping.clone())
            .await
            .status,
        404
    );
    assert_eq!(delete(&svc, &bob).await.status, 404);
    let resp = post_as(&svc, "client:bob", Some(&bob), ACCEPT_JSON, ping).await;
    assert_eq!(resp.status, 200, "bob's session survived");

    // Once Alice closes hers, she may open another.
    delete(&svc, &alice).await;
    let again = open_session(&svc, PROTOCOL).await;
    delete(&svc, &again).await;
    svc.shutdown().await;
    assert_eq!(svc.session_count(), 0);
}

#[tokio::test]
async fn stdio_a_server_that_dies_at_start_is_reported() {
    let svc = command_service(
        &["sh", "-c", "echo dying >&2; exit 3"],
        SessionLimits::default(),
    );
    let started = Instant::now();
    let resp = post(&svc, None, ACCEPT_BOTH, init_request(PROTOCOL)).await;
    assert_eq!(resp.status, 502);
    assert!(header(&resp, "mcp-session-id").is_none());
    let msg = rpc_error_message(&json_body(resp).await);
    // What happened and a reference to the log line; the exit status stays in the log.
    assert!(
        msg.contains("exited unexpectedly") && msg.contains("(ref "),
        "{msg}"
    );
    assert!(!msg.contains("exit status"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(svc.session_count(), 0);

    let svc = command_service(&["/nonexistent/mcp-server"], SessionLimits::default());
    let resp = post(&svc, None, ACCEPT_BOTH, init_request(PROTOCOL)).await;
    assert_eq!(resp.status, 502);
    let msg = rpc_error_message(&json_body(resp).await);
    // The client learns that the server could not start, not which command it is.
    assert!(
        msg.contains("could not be started") && msg.contains("(ref "),
        "{msg}"
    );
    assert!(!msg.contains("/nonexistent"), "{msg}");
    assert_eq!(svc.session_count(), 0);
}

#[tokio::test]
async fn stdio_a_crash_mid_request_ends_the_stream_with_an_error() {
    let tag = new_tag();
    let svc = everything(&tag, SessionLimits::default());
    let session = open_session(&svc, PROTOCOL).await;
    let pid = the_pid(&tag);
    let mut events = running_call(&svc, &session, long_running(9, 20, 20, "crash")).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let last = loop {
        let msg = events
            .next()
            .await
            .expect("an error before the stream ends");
        if msg.get("id").is_some() {
            break msg;
        }
    };
    assert_eq!(last["id"], 9);
    let msg = rpc_error_message(&last);
    assert!(
        msg.contains("exited unexpectedly") && msg.contains("(ref "),
        "{last}"
    );
    assert!(
        !msg.contains("signal"),
        "the exit status stays in the log: {last}"
    );
    assert!(events.next().await.is_none());
    let ping = json!({"jsonrpc": "2.0", "id": 10, "method": "ping"});
    assert_eq!(
        post(&svc, Some(&session), ACCEPT_BOTH, ping).await.status,
        404
    );
    assert_eq!(svc.session_count(), 0);
}

#[tokio::test]
async fn stdio_junk_and_oversized_stdout_lines_are_skipped() {
    // Answers every request, each time after a non-JSON line, a 17 MiB line and a long stderr line.
    let script = r#"
        const rl = require('readline').createInterface({ input: process.stdin });
        rl.on('line', (l) => {
            const m = JSON.parse(l);
            if (m.id === undefined) return;
            process.stdout.write('this is not json\n');
            process.stdout.write('{"big":"' + 'a'.repeat(17 * 1024 * 1024) + '"}\n');
            process.stderr.write('e'.repeat(20000) + '\n');
            const result = m.method === 'initialize'
                ? { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 'junky', version: '0' } }
                : {};
            process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }) + '\n');
        });
    "#;
    let node = peer("NODE22");
    let svc = command_service(&[&node, "-e", script], SessionLimits::default());
    let resp = post(&svc, None, ACCEPT_JSON, init_request(PROTOCOL)).await;
    assert_eq!(resp.status, 200);
    let session = header(&resp, "mcp-session-id").expect("session").to_owned();
    assert_eq!(
        json_body(resp).await["result"]["serverInfo"]["name"],
        "junky"
    );
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let v = json_body(post(&svc, Some(&session), ACCEPT_JSON, ping).await).await;
    assert_eq!(v, json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
    delete(&svc, &session).await;
}

#[tokio::test]
async fn stdio_idle_sessions_are_closed() {
    let tag = new_tag();
    let svc = everything(
        &tag,
        SessionLimits {
            idle_timeout: Duration::from_secs(1),
            ..SessionLimits::default()
        },
    );
    let session = open_session(&svc, PROTOCOL).await;
    let pid = the_pid(&tag);
    // A request in flight is not idleness, even past the timeout.
    let msgs = sse_body(
        post(
            &svc,
            Some(&session),
            ACCEPT_BOTH,
            long_running(1, 2, 2, "idle"),
        )
        .await,
    )
    .await;
    assert_eq!(msgs.last().unwrap()["id"], 1);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!alive(pid), "idle process {pid} still running");
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    assert_eq!(
        post(&svc, Some(&session), ACCEPT_BOTH, ping).await.status,
        404
    );
}

#[tokio::test]
async fn stdio_a_dropped_stream_leaves_no_route_behind() {
    let svc = everything(&new_tag(), SessionLimits::default());
    let session = open_session(&svc, PROTOCOL).await;
    let events = running_call(&svc, &session, long_running(5, 1, 2, "drop")).await;
    drop(events);
    // Id 5 is free again at once: the abandoned exchange's route is gone.
    let ping = json!({"jsonrpc": "2.0", "id": 5, "method": "ping"});
    let v = json_body(post(&svc, Some(&session), ACCEPT_JSON, ping).await).await;
    assert_eq!(v, json!({"jsonrpc": "2.0", "id": 5, "result": {}}));
    // Its late response finds nobody and is dropped; the session keeps working.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ping = json!({"jsonrpc": "2.0", "id": 6, "method": "ping"});
    let v = json_body(post(&svc, Some(&session), ACCEPT_JSON, ping).await).await;
    assert_eq!(v["id"], 6);
    delete(&svc, &session).await;
}

#[tokio::test]
async fn stdio_client_cancellation_ends_the_stream() {
    let svc = everything(&new_tag(), SessionLimits::default());
    let session = open_session(&svc, PROTOCOL).await;
    let mut events = running_call(&svc, &session, long_running(11, 10, 10, "cancel")).await;
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 11, "reason": "test"}});
    assert_eq!(
        post(&svc, Some(&session), ACCEPT_BOTH, cancel).await.status,
        202
    );
    let started = Instant::now();
    while let Some(msg) = events.next().await {
        assert_ne!(msg["id"], 11, "no response after cancellation");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    delete(&svc, &session).await;
}

#[tokio::test]
async fn stdio_batches_are_answered_together() {
    let svc = everything(&new_tag(), SessionLimits::default());
    let session = open_session(&svc, PROTOCOL).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    ]);
    let v = json_body(post(&svc, Some(&session), ACCEPT_JSON, batch.clone()).await).await;
    let mut ids: Vec<u64> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2]);
    let batch = json!([{"jsonrpc": "2.0", "id": 3, "method": "ping"}, {"jsonrpc": "2.0", "id": 3, "method": "ping"}]);
    assert_eq!(
        post(&svc, Some(&session), ACCEPT_JSON, batch).await.status,
        400,
        "duplicate ids"
    );
    delete(&svc, &session).await;
}

#[tokio::test]
async fn stdio_shutdown_ends_every_process() {
    let tag = new_tag();
    let svc = everything(&tag, SessionLimits::default());
    let _a = open_session(&svc, PROTOCOL).await;
    let _b = open_session(&svc, PROTOCOL).await;
    let pids = pids_with_tag(&tag);
    assert_eq!(pids.len(), 2);
    tokio::time::timeout(STEP, svc.shutdown())
        .await
        .expect("shutdown in time");
    assert!(pids.iter().all(|&p| !alive(p)), "processes left: {pids:?}");
    assert_eq!(svc.session_count(), 0);
    assert_eq!(
        post(&svc, None, ACCEPT_BOTH, init_request(PROTOCOL))
            .await
            .status,
        503
    );
}

#[tokio::test]
async fn stdio_dropping_the_service_kills_its_processes() {
    let tag = new_tag();
    let svc = everything(&tag, SessionLimits::default());
    let _session = open_session(&svc, PROTOCOL).await;
    let pid = the_pid(&tag);
    drop(svc);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(pid), "process {pid} survived its service");
}
