//! A connector with a valid certificate that misbehaves (`underpass_tests::rogue`): malformed
//! and oversized control frames, streams of its own toward the edge, floods of control
//! messages, and broken answers to exchanges (garbage heads, oversized heads, resets, answers
//! that never come or never end). The rogue serves the service `bad`; a well-behaved
//! connector serves `rec`. After each attack the edge has logged a reason, still serves a
//! client through the good connector, and its descriptors and memory are back near their
//! baseline (`underpass_tests::vitals`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use underpass_proto::frame::{self, ResponseHead};
use underpass_tests::http::{self, Reply};
use underpass_tests::recorder::Recorder;
use underpass_tests::rogue::{Answer, Rogue};
use underpass_tests::vitals::{assert_survived, Vitals};
use underpass_tests::*;

const KEY: &str = "adversarial-tunnel-key";

/// Edge, a good connector `dc1` serving `rec` (a recording backend), and the certificate of
/// the connector `rogue`, granted the service `bad`.
struct Stack {
    dir: tempfile::TempDir,
    setup: EdgeSetup,
    edge: Proc,
    _connector: Proc,
    backend: Recorder,
    rogue_cert: (PathBuf, PathBuf),
    ca: PathBuf,
}

impl Stack {
    fn start() -> Stack {
        let backend = Recorder::start();
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(&dir.path().join("pki"));
        pki.issue("edge", "edge");
        let (cert, key) = pki.issue("connector", "dc1");
        let rogue_cert = pki.issue("connector", "rogue");
        let extra = format!(
            "[auth]\n[[auth.api_keys]]\nname = \"alice\"\nsha256 = \"{}\"\n\
             [policy]\nallow_all = true\n",
            sha256_hex(KEY)
        );
        let setup = EdgeSetup::write(
            dir.path(),
            false,
            &[("rec", &["dc1"]), ("bad", &["rogue"])],
            &extra,
        );
        let edge = setup.start(dir.path());
        let config = write_connector_config(
            dir.path(),
            "connector.toml",
            "dc1",
            setup.tunnel_port,
            ConnectorPki {
                cert: &cert,
                key: &key,
                ca: &pki.ca(),
            },
            &[("rec", &backend.url)],
        );
        let connector = start_connector(dir.path(), "connector", &config);
        setup.wait_ready("rec", Duration::from_secs(30));
        let s = Stack {
            ca: pki.ca(),
            dir,
            setup,
            edge,
            _connector: connector,
            backend,
            rogue_cert,
        };
        // One call first, so that the baseline is taken with everything warmed up.
        s.serves().unwrap();
        s
    }

    fn vitals(&self) -> Vitals {
        Vitals::of(self.edge.pid())
    }

    /// A legitimate `tools/call` through the good connector: served, and seen by the backend.
    fn serves(&self) -> Result<(), String> {
        let before = self.backend.tool_calls("echo");
        let r = self.post("rec", Duration::from_secs(30))?;
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        if self.backend.tool_calls("echo") != before + 1 {
            return Err("the call did not reach the backend".into());
        }
        Ok(())
    }

    fn post(&self, service: &str, timeout: Duration) -> Result<Reply, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "echo", "arguments": {}}})
        .to_string();
        let mut c =
            TcpStream::connect(("127.0.0.1", self.setup.client_port)).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        c.write_all(post_head(self.setup.client_port, service, body.len()).as_bytes())
            .and_then(|()| c.write_all(body.as_bytes()))
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        http::parse(&raw).map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(&raw)))
    }

    fn dial(&self) -> Rogue {
        Rogue::dial(
            self.setup.tunnel_port,
            &self.rogue_cert.0,
            &self.rogue_cert.1,
            &self.ca,
        )
        .unwrap_or_else(|e| panic!("rogue cannot dial: {e}\n{}", self.edge.log_text()))
    }

    /// Waits until the edge's log holds `needle` `count` times; panics with the log.
    fn logged(&mut self, needle: &str, count: usize) {
        self.edge
            .wait_for_log_count(needle, count, Duration::from_secs(20));
    }

    fn log_count(&self, needle: &str) -> usize {
        self.edge.log_text().matches(needle).count()
    }

    fn survived(&self, before: &Vitals, attack: &str) {
        assert_survived(before, attack, || self.serves(), || self.edge.log_text());
    }

    /// Waits until `/readyz` lists `n` tunnels for the service `bad`.
    fn bad_tunnels(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(r) = http::get(&self.setup.admin("/readyz")) {
                let v = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_default();
                if v["services"]["bad"].as_u64().unwrap_or(0) == n {
                    return;
                }
                last = String::from_utf8_lossy(&r.body).into_owned();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("/readyz never listed {n} tunnel(s) for bad: {last}");
    }
}

fn post_head(port: u16, service: &str, len: usize) -> String {
    format!(
        "POST /mcp/{service} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Authorization: Bearer {KEY}\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// The tunnel was closed by the edge as a protocol violation (application code 2).
fn assert_closed_for_protocol(rogue: &Rogue, what: &str) {
    match rogue.closed_within(Duration::from_secs(20)) {
        Some(quinn::ConnectionError::ApplicationClosed(c)) => {
            assert_eq!(
                c.error_code,
                quinn::VarInt::from_u32(frame::codes::PROTOCOL),
                "{what}: {c:?}"
            );
        }
        other => panic!("{what}: the edge did not close the tunnel: {other:?}"),
    }
}

/// One control frame of a message type no build knows (`{"Gossip": {...}}` in MessagePack).
fn unknown_control_frame(pad: usize) -> Vec<u8> {
    let mut payload = vec![0x81, 0xa6];
    payload.extend_from_slice(b"Gossip");
    payload.push(0x81);
    payload.push(0xa1);
    payload.push(b'x');
    payload.push(0xdb); // str 32
    payload.extend_from_slice(&(pad as u32).to_be_bytes());
    payload.extend(std::iter::repeat_n(b'g', pad));
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(payload);
    frame
}

#[test]
fn malformed_control_frames_close_only_the_rogue_tunnel() {
    let mut s = Stack::start();
    let before = s.vitals();

    // Not a frame at all: a length prefix and bytes no MessagePack decoder takes.
    let rogue = s.dial();
    let (mut ctl, _) = rogue.open_control().unwrap();
    rogue
        .write(
            &mut ctl,
            &[0, 0, 0, 8, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1],
        )
        .unwrap();
    assert_closed_for_protocol(&rogue, "garbage before Hello");
    s.logged(
        "tunnel refused: bad Hello from spiffe://underpass.local/connector/rogue",
        1,
    );
    s.survived(&before, "a garbage first control frame");

    // A Hello bigger than the frame limit: refused as soon as its length prefix is in.
    let rogue = s.dial();
    let (mut ctl, _) = rogue.open_control().unwrap();
    let mut big = ((frame::MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    big.extend(std::iter::repeat_n(0x90, 64 * 1024));
    let _ = rogue.write(&mut ctl, &big);
    assert_closed_for_protocol(&rogue, "oversized Hello");
    s.logged("exceeds the 262144-byte limit", 1);
    s.survived(&before, "a Hello over the frame limit");

    // A Hello cut short by the end of the stream.
    let rogue = s.dial();
    let (mut ctl, _) = rogue.open_control().unwrap();
    rogue.write(&mut ctl, &[0, 0, 1, 0, 0x81, 0xa5]).unwrap();
    ctl.finish().unwrap();
    assert_closed_for_protocol(&rogue, "truncated Hello");
    s.logged("stream ended inside a frame", 1);
    s.survived(&before, "a Hello cut short");

    // After Welcome: garbage, and a second Hello.
    for (what, bytes, reason) in [
        (
            "garbage after Welcome",
            vec![0, 0, 0, 3, 0xc1, 0xc1, 0xc1],
            "closing tunnel: control protocol: bad control frame",
        ),
        (
            "a second Hello",
            frame::encode(&underpass_proto::control::Control::Hello(
                underpass_proto::control::Hello {
                    protocol: frame::PROTOCOL_VERSION,
                    connector: "rogue".into(),
                    services: vec!["bad".into()],
                    build: "rogue".into(),
                    capabilities: vec![],
                },
            ))
            .unwrap(),
            "unexpected Hello control message after Welcome",
        ),
    ] {
        let rogue = s.dial();
        let (mut ctl, _recv) = rogue.hello("rogue", &["bad"]).unwrap();
        s.bad_tunnels(1);
        rogue.write(&mut ctl, &bytes).unwrap();
        assert_closed_for_protocol(&rogue, what);
        s.logged(reason, 1);
        s.bad_tunnels(0);
        s.survived(&before, what);
    }
    let _ = &s.dir;
}

#[test]
fn streams_a_connector_opens_toward_the_edge_are_refused() {
    let mut s = Stack::start();
    let before = s.vitals();

    // A bidirectional stream besides the control stream, carrying data: the edge closes the
    // tunnel instead of letting it queue unread.
    let rogue = s.dial();
    let (_ctl, _recv) = rogue.hello("rogue", &["bad"]).unwrap();
    s.bad_tunnels(1);
    let conn = rogue.conn.clone();
    let opened = rogue.block_on(async move {
        let (mut send, _recv) = conn.open_bi().await?;
        let _ = send.write_all(&vec![0x42; 1 << 20]).await;
        Ok::<_, quinn::ConnectionError>(())
    });
    assert!(opened.is_ok(), "{opened:?}");
    assert_closed_for_protocol(&rogue, "a stream opened by the connector");
    s.logged("closing tunnel: the connector opened a stream", 1);
    s.bad_tunnels(0);
    s.survived(&before, "a bidirectional stream from the connector");

    // Many at once: only one gets past the control stream (the edge grants connectors two
    // streams), and that one closes the tunnel.
    let rogue = s.dial();
    let (_ctl, _recv) = rogue.hello("rogue", &["bad"]).unwrap();
    let conn = rogue.conn.clone();
    let opened = rogue.block_on(async move {
        let mut opened = 0;
        for _ in 0..1000 {
            match tokio::time::timeout(Duration::from_millis(200), conn.open_bi()).await {
                Ok(Ok((mut send, _))) => {
                    opened += 1;
                    let _ = send.write_all(b"x").await;
                }
                _ => break,
            }
        }
        opened
    });
    assert!(opened <= 1, "the connector opened {opened} streams");
    assert_closed_for_protocol(&rogue, "a burst of streams");
    s.logged("closing tunnel: the connector opened a stream", 2);
    s.survived(
        &before,
        "a burst of bidirectional streams from the connector",
    );

    // Unidirectional streams: the edge grants none, so the connector cannot open one.
    let rogue = s.dial();
    let (_ctl, _recv) = rogue.hello("rogue", &["bad"]).unwrap();
    let conn = rogue.conn.clone();
    let uni = rogue.block_on(async move {
        tokio::time::timeout(Duration::from_secs(2), conn.open_uni())
            .await
            .is_ok()
    });
    assert!(!uni, "the connector could open a unidirectional stream");
    assert!(rogue.conn.close_reason().is_none(), "the tunnel went down");
    s.bad_tunnels(1);
    drop(rogue);
    s.bad_tunnels(0);
    s.survived(&before, "a unidirectional stream from the connector");
    let _ = &s.dir;
}

#[test]
fn control_stream_floods_close_the_tunnel_and_a_trickle_is_ignored() {
    let mut s = Stack::start();
    let before = s.vitals();

    // A few messages of a type a newer connector might send: ignored, logged once per type,
    // and the tunnel stays up.
    let rogue = s.dial();
    let (mut ctl, _recv) = rogue.hello("rogue", &["bad"]).unwrap();
    let few: Vec<u8> = (0..10).flat_map(|_| unknown_control_frame(8)).collect();
    rogue.write(&mut ctl, &few).unwrap();
    s.logged(
        "ignoring control messages of a type this edge does not know",
        1,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        rogue.conn.close_reason().is_none(),
        "a trickle closed the tunnel"
    );
    assert_eq!(
        s.log_count("ignoring control messages of a type this edge does not know"),
        1,
        "one info line per unknown type"
    );

    // A flood of them on the same tunnel: closed, after a bounded number of log lines.
    let flood: Vec<u8> = (0..20_000).flat_map(|_| unknown_control_frame(8)).collect();
    let _ = rogue.write(&mut ctl, &flood);
    assert_closed_for_protocol(&rogue, "a flood of control messages");
    s.logged(
        "closing tunnel: the connector sent control messages faster",
        1,
    );
    s.bad_tunnels(0);
    s.survived(&before, "a flood of unknown control messages after Welcome");

    // Before Hello too (the handshake timeout alone would allow 10 s of it).
    let rogue = s.dial();
    let (mut ctl, _) = rogue.open_control().unwrap();
    let _ = rogue.write(&mut ctl, &flood);
    assert_closed_for_protocol(&rogue, "a flood before Hello");
    s.logged("sent control messages faster than the edge takes them", 2);

    // Large frames, each at the limit: the same budget bounds the bytes decoded.
    let rogue = s.dial();
    let (mut ctl, _recv) = rogue.hello("rogue", &["bad"]).unwrap();
    let big = unknown_control_frame(frame::MAX_FRAME_LEN - 64);
    let conn = rogue.conn.clone();
    rogue.block_on(async move {
        for _ in 0..400 {
            if ctl.write_all(&big).await.is_err() || conn.close_reason().is_some() {
                break;
            }
        }
    });
    assert_closed_for_protocol(&rogue, "a flood of frames at the size limit");
    s.logged(
        "closing tunnel: the connector sent control messages faster",
        2,
    );
    assert_eq!(
        s.log_count("ignoring control messages of a type this edge does not know"),
        3,
        "one info line per unknown type and tunnel"
    );
    s.survived(&before, "floods of control messages");
    let _ = &s.dir;
}

/// A rogue tunnel serving `bad`, answering every exchange with `answer` (and its control
/// stream, to keep while the tunnel lives).
fn serving(s: &Stack, answer: Answer) -> (Rogue, Held) {
    let rogue = s.dial();
    let (send, recv) = rogue.hello("rogue", &["bad"]).unwrap();
    rogue.serve(answer);
    s.bad_tunnels(1);
    (rogue, Held(send, recv))
}

#[allow(dead_code)]
struct Held(quinn::SendStream, quinn::RecvStream);

#[test]
fn broken_answers_from_a_connector_reach_the_client_as_502() {
    let mut s = Stack::start();
    let before = s.vitals();
    let head = |status: u16, headers: Vec<(&str, &[u8])>| ResponseHead {
        status,
        headers: headers
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect(),
        backend_us: None,
    };
    let json = ("content-type", &b"application/json"[..]);
    let cases: Vec<(&str, Answer, &str)> = vec![
        ("a garbage answer", Answer::Garbage, "undecodable frame"),
        (
            "an answer head over the frame limit",
            Answer::OversizedHead,
            "exceeds the 262144-byte limit",
        ),
        (
            "a reset instead of an answer",
            Answer::ResetBeforeHead,
            "reset by peer",
        ),
        (
            "status 0",
            Answer::Head(head(0, vec![json]), b"{}".to_vec()),
            "status 0",
        ),
        (
            "status 101",
            Answer::Head(
                head(
                    101,
                    vec![("upgrade", b"websocket"), ("connection", b"upgrade")],
                ),
                b"{}".to_vec(),
            ),
            "status 101",
        ),
        (
            "status 103",
            Answer::Head(head(103, vec![json]), b"{}".to_vec()),
            "status 103",
        ),
        (
            "status 999",
            Answer::Head(head(999, vec![json]), b"{}".to_vec()),
            "status 999",
        ),
    ];
    for (k, (what, answer, reason)) in cases.into_iter().enumerate() {
        let (rogue, _ctl) = serving(&s, answer);
        let r = s.post("bad", Duration::from_secs(30)).unwrap();
        assert_eq!(r.status, 502, "{what}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], -31502, "{what}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("ref ") && !message.contains("rogue"),
            "{what}: {message}"
        );
        s.logged(reason, 1);
        assert!(
            s.log_count("connector \"rogue\"") > k,
            "{what}: the log does not name the connector\n{}",
            s.edge.log_text()
        );
        drop(rogue);
        s.bad_tunnels(0);
        s.survived(&before, what);
    }

    // Headers no HTTP message may carry are dropped, hop-by-hop ones too; the rest arrives.
    let (rogue, _ctl) = serving(
        &s,
        Answer::Head(
            head(
                200,
                vec![
                    json,
                    ("bad name", b"1"),
                    ("x-split", b"a\r\nx-injected: 1"),
                    ("transfer-encoding", b"chunked, gzip"),
                    ("content-length", b"999999"),
                    ("set-cookie", b"sid=1"),
                    ("x-fine", b"yes"),
                ],
            ),
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec(),
        ),
    );
    let r = s.post("bad", Duration::from_secs(30)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-fine"), Some("yes"));
    for gone in ["bad name", "x-split", "x-injected", "set-cookie"] {
        assert!(r.header(gone).is_none(), "{gone} reached the client: {r:?}");
    }
    assert_eq!(r.json()["id"], 1, "{}", r.text());
    drop(rogue);
    s.bad_tunnels(0);
    s.survived(&before, "forbidden response headers");
    let _ = &s.dir;
}

/// Sends a request for `bad` and reads until the head and `until` have arrived (or `wait`
/// has passed), then leaves: what a client that gives up does.
fn ask_and_leave(s: &Stack, until: &[u8], wait: Duration) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {}}})
    .to_string();
    let mut c = TcpStream::connect(("127.0.0.1", s.setup.client_port)).unwrap();
    c.write_all(post_head(s.setup.client_port, "bad", body.len()).as_bytes())
        .unwrap();
    c.write_all(body.as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if !until.is_empty() && seen.windows(until.len()).any(|w| w == until) {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    seen
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn answers_that_never_come_never_end_or_break_off_hold_nothing_once_the_client_leaves() {
    let mut s = Stack::start();
    let before = s.vitals();

    // Never answers: no fixed timeout cuts a long tool call, so the clients wait; when they
    // give up, the edge abandons their exchanges (the connector sees them stopped).
    let (rogue, _ctl) = serving(&s, Answer::Never);
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let port = s.setup.client_port;
            std::thread::spawn(move || {
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                  "params": {"name": "echo", "arguments": {}}})
                .to_string();
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.write_all(post_head(port, "bad", body.len()).as_bytes())
                    .unwrap();
                c.write_all(body.as_bytes()).unwrap();
                c
            })
        })
        .collect();
    let conns: Vec<TcpStream> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let seen = rogue.seen.clone();
    wait_until(
        "the exchanges never reached the rogue",
        Duration::from_secs(20),
        || seen.exchanges.load(std::sync::atomic::Ordering::SeqCst) == 20,
    );
    // Meanwhile others are served.
    s.serves().unwrap();
    drop(conns);
    wait_until(
        "the edge kept exchanges whose clients left",
        Duration::from_secs(20),
        || {
            seen.abandoned_by_edge
                .load(std::sync::atomic::Ordering::SeqCst)
                == 20
        },
    );
    drop(rogue);
    s.bad_tunnels(0);
    s.survived(&before, "20 exchanges never answered");

    // Never ends: an event stream with one event and nothing after.
    let (rogue, _ctl) = serving(&s, Answer::OpenForever);
    let got = ask_and_leave(&s, b"notifications/x", Duration::from_secs(20));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("notifications/x"),
        "{text}"
    );
    let seen = rogue.seen.clone();
    wait_until(
        "the edge kept an event stream whose client left",
        Duration::from_secs(20),
        || {
            seen.abandoned_by_edge
                .load(std::sync::atomic::Ordering::SeqCst)
                == 1
        },
    );
    drop(rogue);
    s.bad_tunnels(0);
    s.survived(&before, "an event stream that never ends");

    // Breaks off mid-body: the client gets the head and what came, then the connection ends
    // without the body's end (HTTP/1.1 chunked: no last chunk).
    let (rogue, _ctl) = serving(&s, Answer::ResetMidBody);
    let got = ask_and_leave(&s, b"", Duration::from_secs(20));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("notifications/x"),
        "{text}"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut body ended cleanly: {text}"
    );
    s.logged("tunnel stream failed", 1);
    drop(rogue);
    s.bad_tunnels(0);
    s.survived(&before, "an answer reset mid-body");
    let _ = &s.dir;
}

#[test]
fn certificates_the_tunnel_port_must_refuse_get_no_tunnel() {
    let s = Stack::start();
    let before = s.vitals();
    let pki = Pki {
        dir: s.dir.path().join("pki"),
    };
    let foreign = Pki::init(&s.dir.path().join("foreign"));
    let cases = [
        ("a client certificate", pki.issue("client", "mallory")),
        (
            "an edge certificate",
            (pki.cert("edge"), pki.dir.join("edge.key")),
        ),
        (
            "a connector certificate of a foreign CA",
            foreign.issue("connector", "rogue"),
        ),
    ];
    for (what, (cert, key)) in cases {
        // The handshake fails, or the edge closes the connection before any Hello is taken.
        if let Ok(rogue) = Rogue::dial(s.setup.tunnel_port, &cert, &key, &s.ca) {
            let hello = rogue.hello("rogue", &["bad"]);
            assert!(hello.is_err(), "{what}: the edge welcomed it");
        }
        std::thread::sleep(Duration::from_millis(200));
        let r = http::get(&s.setup.admin("/readyz")).unwrap();
        let v = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_default();
        assert_eq!(v["services"]["bad"].as_u64().unwrap_or(0), 0, "{what}: {v}");
        s.survived(&before, what);
    }
}
