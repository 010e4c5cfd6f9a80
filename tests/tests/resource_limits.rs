//! Denial of service across tenants, tried against the real edge over real sockets: idle and
//! slow connections, HTTP/2 connections idle after SETTINGS, large unauthenticated bodies,
//! sessions and concurrent calls piling up for one principal, a low open-file limit. Each
//! attack is followed by a legitimate request that must still be served, and by a check that
//! the edge's descriptors come back near where they were.
//!
//! Caps and timeouts are configured small (`[clients]` keys) so that the attacks are quick.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post, Reply};
use underpass_tests::recorder::Recorder;
use underpass_tests::*;

const ALICE: &str = "up_alice_key_0123456789abcdef";
const BOB: &str = "up_bob_key_0123456789abcdef01";
const SERVICE: &str = "rec";

/// Edge (API keys `alice` and `bob`, both allowed everything on `rec`), one connector, and
/// the backend at `backend_url`.
struct Stack {
    dir: tempfile::TempDir,
    pki: Pki,
    setup: EdgeSetup,
    edge: Proc,
    _connector: Proc,
}

impl Stack {
    /// `clients` are extra `[clients]` lines; `nofile` = (soft, hard) open-file limits the
    /// edge starts with.
    fn start(tls: bool, backend_url: &str, clients: &str, nofile: Option<(u32, u32)>) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.toml"),
            "[[allow]]\nprincipals = [\"apikey:alice\", \"apikey:bob\"]\nservices = [\"rec\"]\n\
             tools = [\"*\"]\nresources = [\"*\"]\nprompts = [\"*\"]\n",
        )
        .unwrap();
        let pki = Pki::init(&dir.path().join("pki"));
        pki.issue("edge", "edge");
        let (cert, key) = pki.issue("connector", "dc1");
        let extra = format!(
            "[auth]\n[[auth.api_keys]]\nname = \"alice\"\nsha256 = \"{}\"\n\
             [[auth.api_keys]]\nname = \"bob\"\nsha256 = \"{}\"\n[policy]\nfile = \"policy.toml\"\n",
            sha256_hex(ALICE),
            sha256_hex(BOB)
        );
        let setup = EdgeSetup::write(dir.path(), tls, &[(SERVICE, &["dc1"])], &extra);
        setup.add_clients_keys(clients);
        let edge = match nofile {
            None => setup.start(dir.path()),
            Some((soft, hard)) => {
                let mut p = Proc::spawn(
                    "edge",
                    dir.path(),
                    Command::new("bash")
                        .arg("-c")
                        .arg(format!(
                            "ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" --config \"$1\""
                        ))
                        .arg(bin("underpass-edge"))
                        .arg(&setup.config)
                        .env("RUST_LOG", "info,underpass_edge=debug"),
                );
                p.wait_for_log("tunnel listener up", Duration::from_secs(20));
                p
            }
        };
        let connector_config = write_connector_config(
            dir.path(),
            "connector.toml",
            "dc1",
            setup.tunnel_port,
            ConnectorPki {
                cert: &cert,
                key: &key,
                ca: &pki.ca(),
            },
            &[(SERVICE, backend_url)],
        );
        let connector = start_connector(dir.path(), "connector", &connector_config);
        setup.wait_ready(SERVICE, Duration::from_secs(30));
        Stack {
            dir,
            pki,
            setup,
            edge,
            _connector: connector,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.setup.client_port))
    }

    fn url(&self) -> String {
        self.setup.url(SERVICE)
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.edge.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.edge.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits (bounded) until the edge holds at most `baseline + 8` descriptors.
    fn assert_fds_back_near(&self, baseline: usize, after: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut now = self.fds();
        while now > baseline + 8 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            now = self.fds();
        }
        assert!(
            now <= baseline + 8,
            "after {after}: the edge holds {now} descriptors, {baseline} before\n{}",
            self.edge.log_text()
        );
    }

    /// A legitimate `tools/call echo` by `key`, over plain HTTP/1.1 or TLS, from `from`.
    fn legit_call(&self, key: &str, from: IpAddr) -> Reply {
        let body = tool_call("echo", json!({})).to_string();
        let req = format!(
            "POST /mcp/{SERVICE} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Authorization: Bearer {key}\r\nContent-Length: {}\r\n\r\n{body}",
            self.setup.client_port,
            body.len()
        );
        let tcp = connect_from(from, self.addr()).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut raw = Vec::new();
        if self.setup.tls {
            let mut tls = tls_client(&self.pki.ca(), tcp).expect("TLS handshake");
            tls.write_all(req.as_bytes()).unwrap();
            let _ = tls.read_to_end(&mut raw);
        } else {
            let mut tcp = tcp;
            tcp.write_all(req.as_bytes()).unwrap();
            let _ = tcp.read_to_end(&mut raw);
        }
        http::parse(&raw).unwrap_or_else(|e| {
            panic!(
                "no HTTP answer ({e}): {:?}\nedge log:\n{}",
                String::from_utf8_lossy(&raw),
                self.edge.log_text()
            )
        })
    }

    fn call(&self, key: &str, extra: &[(&str, &str)], body: &Value) -> Reply {
        let bearer = format!("Bearer {key}");
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend_from_slice(extra);
        mcp_post(&self.url(), &headers, body).unwrap()
    }
}

fn tool_call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

/// A TCP connection from the loopback address `from` (Linux routes all of 127/8 to lo), so
/// that one test can play several client addresses.
fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = socket.connect(to).await?.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Completes a TLS handshake with the edge (trusting the test CA) over `tcp`.
fn tls_client(ca: &Path, tcp: TcpStream) -> std::io::Result<TlsStream> {
    let roots = underpass_transport::tls::load_roots(ca).map_err(std::io::Error::other)?;
    let config = rustls::ClientConfig::builder_with_provider(underpass_transport::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Whether the peer closes `s` within `within` (data it sends meanwhile is read and dropped).
fn closed_within(s: &mut impl Read, set_timeout: impl Fn(Duration), within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        set_timeout(Duration::from_millis(250));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return true,
        }
    }
    false
}

fn tcp_closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let clone = s.try_clone().unwrap();
    closed_within(
        s,
        move |d| {
            let _ = clone.set_read_timeout(Some(d));
        },
        within,
    )
}

fn tls_closed_within(s: &mut TlsStream, within: Duration) -> bool {
    let clone = s.sock.try_clone().unwrap();
    closed_within(
        s,
        move |d| {
            let _ = clone.set_read_timeout(Some(d));
        },
        within,
    )
}

#[test]
fn idle_tls_connections_cannot_lock_clients_out() {
    let backend = Recorder::start();
    let s = Stack::start(
        true,
        &backend.url,
        // A long handshake timeout: connections refused over a cap are closed at once, not
        // for want of a ClientHello.
        "max_connections = 40\nmax_connections_per_ip = 30\nidle_timeout = \"3s\"\n\
         handshake_timeout = \"60s\"",
        None,
    );
    let baseline = s.fds();

    // One address opens connections, completes TLS, and goes silent: 30 are admitted, the
    // rest are closed at once (the listener never wedges).
    let attacker = ip("127.0.0.1");
    let mut idle: Vec<TlsStream> = (0..30)
        .map(|_| tls_client(&s.pki.ca(), connect_from(attacker, s.addr()).unwrap()).unwrap())
        .collect();
    for k in 0..10 {
        let mut extra = connect_from(attacker, s.addr()).unwrap();
        assert!(
            tcp_closed_within(&mut extra, Duration::from_secs(5)),
            "connection {k} over the per-address cap was left open\n{}",
            s.edge.log_text()
        );
    }
    // A second address fills the edge up to its total cap.
    let mut more: Vec<TlsStream> = (0..10)
        .map(|_| {
            tls_client(
                &s.pki.ca(),
                connect_from(ip("127.0.0.3"), s.addr()).unwrap(),
            )
            .unwrap()
        })
        .collect();

    // A legitimate client still gets served: an idle connection makes room.
    let r = s.legit_call(ALICE, ip("127.0.0.2"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.tool_calls("echo"), 1);

    // And every idle connection is closed by the edge after the idle timeout.
    for (k, c) in idle.iter_mut().chain(more.iter_mut()).enumerate() {
        assert!(
            tls_closed_within(c, Duration::from_secs(30)),
            "idle TLS connection {k} is still open\n{}",
            s.edge.log_text()
        );
    }
    drop((idle, more));
    s.assert_fds_back_near(baseline, "idle TLS connections");
    assert!(
        s.edge.log_text().contains("max_connections_per_ip"),
        "refusals are logged:\n{}",
        s.edge.log_text()
    );
}

#[test]
fn the_edge_raises_its_open_file_limit_and_keeps_descriptors_for_clients() {
    let backend = Recorder::start();
    // Soft limit 128, hard 512: raised to 512, so client connections are capped at
    // 512 - 256 (the descriptors kept for everything else).
    let s = Stack::start(false, &backend.url, "", Some((128, 512)));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.edge.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, vec!["512", "512"], "{line}");
    assert!(
        s.edge.log_text().contains("lowered from 8192 to 256"),
        "{}",
        s.edge.log_text()
    );
    let baseline = s.fds();

    // 300 idle connections (from two addresses, within the per-address cap) would exhaust
    // the original 128 descriptors; the edge keeps at most 256 and stays reachable.
    let mut idle = Vec::new();
    for k in 0..300 {
        let from = if k < 200 { "127.0.0.1" } else { "127.0.0.4" };
        idle.push(connect_from(ip(from), s.addr()).unwrap());
    }
    let r = s.legit_call(BOB, ip("127.0.0.2"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        s.fds() < 512,
        "the edge holds {} descriptors of its 512",
        s.fds()
    );
    assert!(
        !s.edge.log_text().contains("accept failed"),
        "{}",
        s.edge.log_text()
    );
    drop(idle);
    s.assert_fds_back_near(baseline, "300 idle connections");
}

#[test]
fn slow_headers_and_slow_bodies_are_cut() {
    let backend = Recorder::start();
    let s = Stack::start(
        false,
        &backend.url,
        "header_timeout = \"2s\"\nbody_timeout = \"2s\"",
        None,
    );
    let baseline = s.fds();

    // Slowloris: headers one line at a time, never finished.
    let mut slow = TcpStream::connect(s.addr()).unwrap();
    slow.write_all(b"POST /mcp/rec HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut cut = false;
    for _ in 0..120 {
        if slow.write_all(b"X-Slow: 1\r\n").is_err()
            || tcp_closed_within(&mut slow, Duration::from_millis(250))
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "a connection trickling headers was never closed");

    // A slow body from an authenticated client: 408, then the connection is closed.
    let mut slow = TcpStream::connect(s.addr()).unwrap();
    let head = format!(
        "POST /mcp/rec HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nAuthorization: Bearer {ALICE}\r\n\
         Content-Length: 1000\r\n\r\n"
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut raw = Vec::new();
    for _ in 0..120 {
        let _ = slow.write_all(b" ");
        let mut buf = [0u8; 4096];
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let r = http::parse(&raw).expect("an answer to the slow body");
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(r.text().contains("body_timeout"), "{}", r.text());
    assert!(tcp_closed_within(&mut slow, Duration::from_secs(10)));

    let r = s.legit_call(ALICE, ip("127.0.0.1"));
    assert_eq!(r.status, 200, "{}", r.text());
    s.assert_fds_back_near(baseline, "slow headers and bodies");
}

#[test]
fn http2_connections_idle_after_settings_are_closed() {
    let backend = Recorder::start();
    let s = Stack::start(
        false,
        &backend.url,
        // PINGs far apart, so that only the idle timeout can close the connection.
        "idle_timeout = \"2s\"\nhttp2_keepalive_interval = \"1h\"",
        None,
    );
    let baseline = s.fds();
    let mut conns: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr()).unwrap();
            c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
            c.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap(); // empty SETTINGS
            c
        })
        .collect();
    for (k, c) in conns.iter_mut().enumerate() {
        // The edge answers with its SETTINGS, then a GOAWAY and the close.
        let mut seen = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = c.read_to_end(&mut seen);
        let goaway = frames(&seen).iter().any(|&(kind, _)| kind == 7);
        assert!(goaway, "connection {k}: no GOAWAY in {seen:?}");
    }
    drop(conns);
    let r = s.legit_call(ALICE, ip("127.0.0.1"));
    assert_eq!(r.status, 200, "{}", r.text());
    s.assert_fds_back_near(baseline, "idle HTTP/2 connections");
}

/// (type, stream) of each whole HTTP/2 frame in `b`.
fn frames(mut b: &[u8]) -> Vec<(u8, u32)> {
    let mut out = Vec::new();
    while b.len() >= 9 {
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        let stream = u32::from_be_bytes([b[5] & 0x7f, b[6], b[7], b[8]]);
        out.push((b[3], stream));
        b = b.get(9 + len..).unwrap_or(&[]);
    }
    out
}

#[test]
fn unauthenticated_bodies_are_refused_without_being_buffered() {
    const MIB4: usize = 4 * 1024 * 1024;
    const ATTACKERS: usize = 150;
    let backend = Recorder::start();
    let s = Stack::start(false, &backend.url, "", None);
    let baseline_fds = s.fds();
    std::thread::sleep(Duration::from_millis(500));
    let baseline_rss = s.rss_kib();

    // 150 POSTs without credentials, each declaring 4 MiB and sending all but one byte.
    let body = vec![b'x'; MIB4 - 1];
    let mut conns = Vec::new();
    let mut peak = 0;
    for _ in 0..ATTACKERS {
        let mut c = TcpStream::connect(s.addr()).unwrap();
        let head = format!(
            "POST /mcp/rec HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {MIB4}\r\n\r\n"
        );
        c.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&body).unwrap();
        conns.push(c);
        peak = peak.max(s.rss_kib());
    }
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(s.rss_kib());
    }
    let grown_mib = peak.saturating_sub(baseline_rss) / 1024;
    eprintln!("edge RSS {baseline_rss} KiB before, {peak} KiB at peak");
    // Buffering them would take 600 MiB; draining them takes hyper's read buffers only.
    assert!(
        grown_mib < 160,
        "the edge grew by {grown_mib} MiB ({baseline_rss} KiB before, {peak} KiB at peak) \
         while {ATTACKERS} unauthenticated bodies were stalled"
    );

    // A legitimate client is served meanwhile.
    let r = s.legit_call(ALICE, ip("127.0.0.2"));
    assert_eq!(r.status, 200, "{}", r.text());

    // Every attacker gets the 401 with its challenge, as any unauthenticated request does.
    for (k, c) in conns.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        let r =
            http::parse(&raw).unwrap_or_else(|e| panic!("attacker {k}: no answer ({e}): {raw:?}"));
        assert_eq!(r.status, 401, "attacker {k}: {}", r.text());
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("resource_metadata=\""),
            "attacker {k}: {challenge}"
        );
        assert_eq!(r.json()["error"]["code"], -31401, "{}", r.text());
    }
    drop(conns);
    assert_eq!(
        backend.seen().len(),
        1,
        "only the legitimate call reached the backend"
    );
    s.assert_fds_back_near(baseline_fds, "stalled unauthenticated bodies");
}

#[test]
fn request_bodies_share_a_bounded_budget() {
    // Room for two 500 KiB bodies, not three.
    let backend = Recorder::start();
    let s = Stack::start(
        false,
        &backend.url,
        "max_request_body = 600000\nmax_buffered_body_bytes = 1048576\nbody_timeout = \"60s\"",
        None,
    );
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let addr = s.addr();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut body = tool_call("echo", json!({"pad": "x".repeat(490_000)})).to_string();
                let pad = 500_000 - body.len();
                body.push_str(&" ".repeat(pad));
                let mut c = TcpStream::connect(addr).unwrap();
                let head = format!(
                    "POST /mcp/rec HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                     Accept: application/json, text/event-stream\r\nAuthorization: Bearer {ALICE}\r\n\
                     Connection: close\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                c.write_all(head.as_bytes()).unwrap();
                let (most, last) = body.as_bytes().split_at(body.len() - 10);
                c.write_all(most).unwrap();
                barrier.wait();
                // Give the edge a moment to see all three heads, then finish the body.
                std::thread::sleep(Duration::from_millis(1000));
                let _ = c.write_all(last);
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut raw = Vec::new();
                let _ = c.read_to_end(&mut raw);
                http::parse(&raw).unwrap()
            })
        })
        .collect();
    let replies: Vec<Reply> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503], "{replies:?}");
    let refused = replies.iter().find(|r| r.status == 503).unwrap();
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    assert!(
        refused.text().contains("max_buffered_body_bytes"),
        "{}",
        refused.text()
    );
    // The budget came back.
    let r = s.legit_call(ALICE, ip("127.0.0.1"));
    assert_eq!(r.status, 200, "{}", r.text());
}

fn initialize(s: &Stack, key: &str) -> Reply {
    s.call(
        key,
        &[],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "limits-test", "version": "1"}}}),
    )
}

fn session_of(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("mcp-session-id")
        .expect("Mcp-Session-Id")
        .to_owned()
}

fn on_session(s: &Stack, key: &str, session: &str) -> Reply {
    s.call(
        key,
        &[
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
}

#[test]
fn sessions_are_capped_per_principal_and_forgotten_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, port) = start_echo_backend(dir.path(), &[]);
    let backend_url = format!("http://127.0.0.1:{port}/mcp");
    let mut s = Stack::start(
        false,
        &backend_url,
        "max_sessions_per_principal = 3\nsession_idle_timeout = \"2s\"",
        None,
    );

    let a: Vec<String> = (0..3).map(|_| session_of(&initialize(&s, ALICE))).collect();
    let r = initialize(&s, ALICE);
    assert_eq!(r.status, 429, "{}", r.text());
    let error = &r.json()["error"];
    assert_eq!(error["code"], -31429, "{}", r.text());
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("max_sessions_per_principal") && message.contains('3'),
        "{message}"
    );
    assert!(r.header("retry-after").is_some());
    // Alice at her cap holds nobody else's places.
    assert_eq!(initialize(&s, BOB).status, 200);
    // The 2024-11-05 SSE endpoint counts too.
    let sse = http::request(
        "GET",
        &format!("{}/sse", s.url()),
        &[
            ("Authorization", &format!("Bearer {ALICE}")),
            ("Accept", "text/event-stream"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(sse.status, 429, "{}", sse.text());
    // Another principal is not affected.
    let b = session_of(&initialize(&s, BOB));

    // Ending a session gives its place back.
    let bearer = format!("Bearer {ALICE}");
    let r = http::request(
        "DELETE",
        &s.url(),
        &[("Authorization", &bearer), ("Mcp-Session-Id", &a[2])],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let a2 = session_of(&initialize(&s, ALICE));

    // Session a[0] stays in use (an open GET event stream); the others go idle and are
    // forgotten by the edge and ended at the backend.
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .write_all(
            format!(
                "GET /mcp/rec HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\
                 Authorization: Bearer {ALICE}\r\nMcp-Session-Id: {}\r\n\
                 MCP-Protocol-Version: 2025-11-25\r\n\r\n",
                a[0]
            )
            .as_bytes(),
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "GET event stream");

    // (Each probe is a request on the session, so probes are further apart than the
    // idle timeout.)
    let mut expired = false;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(3));
        if on_session(&s, ALICE, &a2).status == 404 {
            expired = true;
            break;
        }
    }
    assert!(
        expired,
        "an idle session was never forgotten\n{}",
        s.edge.log_text()
    );
    assert_eq!(
        on_session(&s, ALICE, &a[1]).status,
        404,
        "an older idle session is kept"
    );
    assert_eq!(
        on_session(&s, BOB, &b).status,
        404,
        "bob's idle session is kept"
    );
    assert_eq!(
        on_session(&s, ALICE, &a[0]).status,
        200,
        "a session in use expired"
    );
    // Ended at the backend too: the edge's DELETE of each of them (bob's first session as
    // well) was answered 200.
    // (Clients hold sealed ids, never a backend's, so the test cannot ask the backend about
    // them directly: given the id of the live session a[0], the backend knows nothing of it.)
    s.edge.wait_for_log_count(
        "expired session ended at the backend",
        3,
        Duration::from_secs(10),
    );
    let log = s.edge.log_text();
    let ended: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("expired session ended at the backend"))
        .collect();
    assert!(
        ended.len() >= 3 && ended.iter().all(|l| l.contains("200")),
        "every expired session's DELETE answered 200: {ended:?}"
    );
    let direct = mcp_post(
        &backend_url,
        &[
            ("Mcp-Session-Id", &a[0]),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .unwrap();
    assert_eq!(direct.status, 404, "{}", direct.text());

    // Their places came back: a[0] plus two new ones, then the cap again.
    session_of(&initialize(&s, ALICE));
    session_of(&initialize(&s, ALICE));
    assert_eq!(initialize(&s, ALICE).status, 429);
    drop(stream);
    drop(backend);
    let _ = &s.dir;
}

#[test]
fn concurrent_calls_are_capped_per_principal_and_long_calls_are_never_cut() {
    let backend = Arc::new(Recorder::start());
    let s = Arc::new(Stack::start(
        false,
        &backend.url,
        // Long calls last longer than the idle timeout: in flight is not idle.
        "max_concurrent_per_principal = 2\nidle_timeout = \"1s\"",
        None,
    ));
    let long: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.call(ALICE, &[], &tool_call("sleep", json!({"ms": 4000}))))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while backend.tool_calls("sleep") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        backend.tool_calls("sleep"),
        2,
        "the long calls never reached the backend"
    );

    let r = s.call(ALICE, &[], &tool_call("echo", json!({})));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -31429);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_per_principal"),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        backend.tool_calls("echo"),
        0,
        "the refused call reached the backend"
    );
    assert_eq!(s.call(BOB, &[], &tool_call("echo", json!({}))).status, 200);

    for t in long {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "a long call was cut: {}", r.text());
    }
    assert_eq!(
        s.call(ALICE, &[], &tool_call("echo", json!({}))).status,
        200
    );
}
