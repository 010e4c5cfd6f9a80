use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use super::backend::find_program;
use super::probe::{ClockSample, ProbeFailure, Probed};
use super::*;
use crate::http_client::GetError;

fn addr() -> SocketAddr {
    "192.0.2.7:7844".parse().unwrap()
}

fn sample(edge_offset_ms: i64) -> ClockSample {
    ClockSample {
        sent_ms: 1_000_000,
        received_ms: 1_000_040,
        edge_ms: 1_000_020 + edge_offset_ms,
    }
}

#[test]
fn clock_skew_is_measured_against_the_round_trip_midpoint() {
    let c = clock_check("edge clock", sample(0));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.detail.contains("0 ms") && c.detail.contains("round trip 40 ms"),
        "{c:?}"
    );
    assert_eq!(clock_check("c", sample(4_999)).status, Status::Pass);
    let warn = clock_check("c", sample(-6_000));
    assert_eq!(warn.status, Status::Warn);
    assert!(warn.detail.contains("behind"), "{warn:?}");
    assert!(warn.todo.contains("NTP"));
    let fail = clock_check("c", sample(61_000));
    assert_eq!(fail.status, Status::Fail);
    assert!(
        fail.detail.contains("ahead of") && fail.detail.contains("break"),
        "{fail:?}"
    );
}

#[test]
fn probe_rows_say_what_to_do() {
    let ok = probe_check(
        "edge e quic",
        Carrier::Quic,
        addr(),
        &Probed::Welcomed {
            edge: "edge1".into(),
            clock: None,
            rtt_ms: 3,
        },
    );
    assert_eq!(ok.status, Status::Pass);
    assert!(ok.detail.contains("accepted"), "{ok:?}");

    let timeout = probe_check(
        "q",
        Carrier::Quic,
        addr(),
        &Probed::Failed(ProbeFailure::Timeout),
    );
    assert_eq!(timeout.status, Status::Fail);
    assert!(timeout.todo.contains("udp port 7844"), "{timeout:?}");

    let refused = probe_check(
        "t",
        Carrier::Tcp,
        addr(),
        &Probed::Failed(ProbeFailure::Error(
            "cannot connect to tcp/192.0.2.7:7844: Connection refused (os error 111)".into(),
        )),
    );
    assert!(
        refused.todo.contains("nothing listens on tcp port 7844"),
        "{refused:?}"
    );

    let alert = probe_check(
        "t",
        Carrier::Quic,
        addr(),
        &Probed::Failed(ProbeFailure::Error(
            "the edge closed the connection: received fatal alert: CertificateExpired".into(),
        )),
    );
    assert!(alert.todo.contains("refused this certificate"), "{alert:?}");

    let older = probe_check(
        "t",
        Carrier::Quic,
        addr(),
        &Probed::Refused("connector offers no service".into()),
    );
    assert_eq!(older.status, Status::Pass);
    let refused = probe_check(
        "t",
        Carrier::Quic,
        addr(),
        &Probed::Refused("not granted".into()),
    );
    assert_eq!(refused.status, Status::Fail);
}

#[test]
fn transport_decides_what_a_carrier_failure_means() {
    let pass = |n: &str| Some(Check::pass(n, "ok"));
    let fail = |n: &str| Some(Check::fail(n, "no answer", "open udp port 7844"));

    let rows = by_transport(TunnelTransport::Auto, "e", fail("e quic"), pass("e tcp"));
    assert_eq!(rows[0].status, Status::Warn);
    assert!(
        rows[0].detail.contains("fall back to TLS over TCP"),
        "{rows:?}"
    );
    assert!(rows[0].todo.contains("transport = \"tcp\""), "{rows:?}");

    let rows = by_transport(TunnelTransport::Auto, "e", fail("e quic"), fail("e tcp"));
    assert!(rows.iter().all(|r| r.status == Status::Fail));

    let rows = by_transport(TunnelTransport::Tcp, "e", None, pass("e tcp"));
    assert_eq!(rows[0].status, Status::Skip);
    assert_eq!(rows[0].name, "e quic");
    assert_eq!(rows[1].status, Status::Pass);

    let rows = by_transport(TunnelTransport::Quic, "e", fail("e quic"), None);
    assert_eq!(
        rows[0].status,
        Status::Fail,
        "quic only: no fallback to soften it"
    );
    assert_eq!(rows[1].status, Status::Skip);
}

/// A server on loopback that answers every connection with `answer` and closes it.
async fn answering(answer: &'static [u8]) -> http::Uri {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(answer).await;
        }
    });
    format!("http://127.0.0.1:{port}/mcp").parse().unwrap()
}

#[tokio::test]
async fn an_http_answer_of_any_status_counts_and_anything_else_is_told_apart() {
    let status = |url| async move { backend::http_status(&url).await };
    let refused =
        answering(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(status(refused.await).await.unwrap(), 405);
    // An event stream that never ends: the status is enough.
    let stream = answering(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n: hi\n\n");
    assert_eq!(status(stream.await).await.unwrap(), 200);
    let ssh = answering(b"SSH-2.0-OpenSSH_9.6\r\n");
    assert!(matches!(status(ssh.await).await, Err(GetError::NotHttp(_))));
    let silent = answering(b"");
    assert!(matches!(
        status(silent.await).await,
        Err(GetError::NotHttp(_))
    ));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nobody: http::Uri = format!("http://127.0.0.1:{closed}/").parse().unwrap();
    assert!(matches!(status(nobody).await, Err(GetError::Connect(_))));
}

#[test]
fn a_stdio_program_is_found_on_path_or_by_path_and_must_be_executable() {
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("mcp-server");
    std::fs::write(&prog, "#!/bin/sh\n").unwrap();
    let no_env = BTreeMap::new();
    let err = find_program(prog.to_str().unwrap(), &no_env, None).unwrap_err();
    assert!(err.contains("not executable"), "{err}");
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        find_program(prog.to_str().unwrap(), &no_env, None).unwrap(),
        prog
    );
    assert_eq!(
        find_program("./mcp-server", &no_env, Some(dir.path())).unwrap(),
        dir.path().join("./mcp-server")
    );
    let env: BTreeMap<String, String> =
        [("PATH".to_owned(), dir.path().display().to_string())].into();
    assert_eq!(find_program("mcp-server", &env, None).unwrap(), prog);
    let err = find_program("no-such-mcp-server", &env, None).unwrap_err();
    assert!(err.contains("not found on PATH"), "{err}");
    assert!(find_program("/nonexistent/x", &no_env, None).is_err());
}

#[test]
fn a_revocation_list_that_does_not_read_fails() {
    assert_eq!(revocation_check(None).status, Status::Skip);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revoked.txt");
    assert_eq!(revocation_check(Some(&path)).status, Status::Fail);
    std::fs::write(&path, "# none\n").unwrap();
    assert_eq!(revocation_check(Some(&path)).status, Status::Pass);
}
