//! The fallback transport, TLS 1.3 over TCP (`underpass_transport::tcp`), with the real
//! binaries: `transport = "tcp"` carries SDK calls; with `transport = "auto"` a connector whose
//! UDP to the edge is dropped (nftables in a network namespace) is on TCP within 5 s, and once
//! the rule is lifted it moves back to QUIC without failing a call; whatever a peer sends to
//! the TCP tunnel port, it is refused with a logged reason and the listener goes on; and an
//! edge that drains closes its TCP tunnels cleanly even with an event stream flowing.
//!
//! The namespace test needs root, `ip` and `nft` (tests/run.sh installs nftables).

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use underpass_proto::identity::{Role, DEFAULT_TRUST_DOMAIN};
use underpass_tests::faults::{ms, FaultBackend, Rng};
use underpass_tests::load::{steady_sdk_loops, summarize, Load, Outcome, Plan, SdkCall};
use underpass_tests::netns::NetNs;
use underpass_tests::*;
use underpass_transport::tls::{self, Credentials, PeerPolicy};

/// Waits (at most `timeout`) until `/readyz` lists exactly `want`; returns how long it took.
fn wait_tunnels(setup: &EdgeSetup, want: &[(&str, &str)], timeout: Duration) -> Duration {
    let start = Instant::now();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    loop {
        let seen = setup.tunnels();
        if seen == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "/readyz never listed {want:?} within {timeout:?}; last: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn transport_tcp_carries_sdk_calls() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_server_everything(scratch.path(), &peers);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let edge_setup = EdgeSetup::write(
        dir.path(),
        true,
        &[("everything", &["dc1"])],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
    );
    let edge = edge_setup.start(dir.path());
    let connector_config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        edge_setup.tunnel_port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &pki.ca(),
        },
        &[("everything", &backend_url)],
    );
    prepend_top_level(&connector_config, "transport = \"tcp\"");
    let connector = start_connector(dir.path(), "connector", &connector_config);
    edge_setup.wait_ready("everything", Duration::from_secs(30));
    let d = Deployment {
        dir,
        pki,
        edge_setup,
        edge,
        connector,
        connector_config,
    };
    // Two tunnels (`tunnels_per_edge` by default), both on TCP.
    wait_tunnels(
        &d.edge_setup,
        &[("dc1", "tcp"), ("dc1", "tcp")],
        Duration::from_secs(10),
    );
    let url = d.edge_setup.url("everything");
    let v = run_client(
        &d,
        &mut ts_client(&peers, &url, &["smoke", "--message=over tcp"]),
    );
    assert_eq!(v["echo"], "Echo: over tcp", "{v}");
    let v = run_client(
        &d,
        &mut py_client(&peers, &url, &["smoke", "--message=python over tcp"]),
    );
    assert_eq!(v["echo"], "Echo: python over tcp", "{v}");
    let log = d.connector.log_text();
    let up: Vec<&str> = log.lines().filter(|l| l.contains("tunnel up")).collect();
    assert!(
        up.len() == 2 && up.iter().all(|l| l.contains("transport=\"tcp\"")),
        "the connector log does not say the tunnel is on tcp:\n{log}"
    );
    assert!(
        !log.contains("transport=\"quic\""),
        "transport = \"tcp\" tried QUIC:\n{log}"
    );
}

/// Field order is drop order: the processes go before the namespace they run in.
struct Net {
    backend: FaultBackend,
    connector: Option<Proc>,
    edge: Proc,
    peers: Peers,
    setup: EdgeSetup,
    connector_config: std::path::PathBuf,
    ns: NetNs,
    dir: tempfile::TempDir,
}

/// Edge on the host (tunnel on the veth address), the fault backend in the namespace; the
/// connector is not started yet.
fn net() -> Net {
    let peers = Peers::get();
    let ns = NetNs::create();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(
        dir.path(),
        false,
        &[("ok", &["dc1"])],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
    );
    setup.set_tunnel_host(&ns.host_addr.to_string());
    let edge = setup.start(dir.path());
    let port = free_port();
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
        &[("ok", &FaultBackend::url_at(port, "ok"))],
    );
    set_connector_edges(
        &connector_config,
        &[format!("{}:{}", ns.host_addr, setup.tunnel_port)],
    );
    let backend = FaultBackend::start_at(dir.path(), port, &ns.prefix());
    Net {
        backend,
        connector: None,
        edge,
        peers,
        setup,
        connector_config,
        ns,
        dir,
    }
}

/// The connector in the namespace, re-probing QUIC every `reprobe_secs`–2×`reprobe_secs`.
fn start_connector_in_ns(n: &Net, reprobe_secs: u64) -> Proc {
    let prefix = n.ns.prefix();
    Proc::spawn(
        "connector",
        n.dir.path(),
        Command::new(&prefix[0])
            .args(&prefix[1..])
            .arg(bin("underpass-connector"))
            .arg("--config")
            .arg(&n.connector_config)
            .env("UNDERPASS_QUIC_REPROBE_SECS", reprobe_secs.to_string())
            .env("RUST_LOG", "info,underpass_connector=debug"),
    )
}

#[test]
fn udp_blocked_falls_back_to_tcp_and_returns_to_quic_without_failing_a_call() {
    let mut rng = Rng::from_env("udp_blocked_falls_back_to_tcp");
    let mut n = net();
    // UDP to and from the edge's tunnel port is dropped before the connector starts.
    n.ns.set_loss(n.setup.tunnel_port, 100);
    n.connector = Some(start_connector_in_ns(&n, 2));
    // The issue's bar: a tunnel carries traffic within 5 s of the connector starting.
    let up = wait_tunnels(
        &n.setup,
        &[("dc1", "tcp"), ("dc1", "tcp")],
        Duration::from_secs(5),
    );
    println!(
        "udp blocked: tunnel on tcp {} after the connector started",
        ms(up)
    );

    let url = n.setup.url("ok");
    let mut plan = Plan::new(&url);
    plan.workers = 3;
    let load = Load::start(&plan, &mut rng);
    let sdk = steady_sdk_loops(&n.peers, n.dir.path(), &url, Duration::from_secs(20));
    load.wait_ok_after(Duration::ZERO, Duration::from_secs(20))
        .expect("no call served over tcp");
    std::thread::sleep(Duration::from_secs(2));
    let on_tcp = load.count();

    // Lift the rule: the next re-probe (every 2–4 s here) finds QUIC, the TCP tunnel drains.
    n.ns.set_loss(n.setup.tunnel_port, 0);
    let back = wait_tunnels(
        &n.setup,
        &[("dc1", "quic"), ("dc1", "quic")],
        Duration::from_secs(30),
    );
    println!(
        "udp unblocked: tunnel back on quic alone {} after the rule was lifted",
        ms(back)
    );
    std::thread::sleep(Duration::from_secs(2));
    let calls = load.finish();
    let sdk: Vec<(String, Vec<SdkCall>)> = sdk
        .into_iter()
        .map(|l| (l.name.clone(), l.finish(Duration::from_secs(60))))
        .collect();
    println!("calls: {} ({on_tcp} while on tcp)", summarize(&calls));
    let failed: Vec<_> = calls.iter().filter(|c| c.outcome != Outcome::Ok).collect();
    assert!(
        failed.is_empty(),
        "calls failed across the switch: {failed:#?}\nconnector log:\n{}\nedge log:\n{}",
        n.connector.as_ref().map(Proc::log_text).unwrap_or_default(),
        n.edge.log_text()
    );
    for (name, sdk_calls) in &sdk {
        let bad: Vec<&SdkCall> = sdk_calls.iter().filter(|c| !c.ok).collect();
        println!("  {name}: {} calls, {} failed", sdk_calls.len(), bad.len());
        assert!(bad.is_empty(), "{name}: calls failed: {bad:#?}");
    }
    let log = n.connector.as_ref().map(Proc::log_text).unwrap_or_default();
    assert!(
        log.contains("falling back to TLS over TCP") && log.contains("QUIC reachable again"),
        "{log}"
    );
    assert!(!n.backend.records().is_empty());
}

/// What a TLS client with `config` gets from the tunnel port after sending `then`.
fn tls_attempt(port: u16, config: rustls::ClientConfig, then: &[u8]) -> String {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let wrote = tls.write_all(then);
    let mut buf = [0u8; 256];
    let read = tls.read(&mut buf);
    format!("write: {wrote:?}, read: {read:?}")
}

fn edge_policy() -> PeerPolicy {
    PeerPolicy {
        role: Role::Edge,
        trust_domain: DEFAULT_TRUST_DOMAIN.into(),
        revoked: None,
    }
}

/// A tunnel client config with `creds` and `alpn`.
fn client_config(creds: &Credentials, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut config = tls::tunnel_client_crypto(creds, edge_policy()).unwrap();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    config
}

#[test]
fn bad_input_on_the_tcp_tunnel_port_is_refused_and_logged() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_server_everything(scratch.path(), &peers);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let (client_cert, client_key) = pki.issue("client", "alice");
    let (edge2_cert, edge2_key) = pki.issue("edge", "edge2");
    let setup = EdgeSetup::write(
        dir.path(),
        false,
        &[("everything", &["dc1"])],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
    );
    let mut edge = setup.start(dir.path());
    let port = setup.tunnel_port;
    let ca = pki.ca();
    let connector = Credentials::load(&cert, &key, &ca).unwrap();
    let tcp_alpn = underpass_transport::tcp::ALPN;

    let mut refused = 0;
    let mut expect = |edge: &mut Proc, what: &str, reason: &str, got: String| {
        refused += 1;
        edge.wait_for_log_count("tunnel refused", refused, Duration::from_secs(20));
        let log = edge.log_text();
        let line = log
            .lines()
            .filter(|l| l.contains("tunnel refused"))
            .nth(refused - 1)
            .unwrap_or_default()
            .to_owned();
        println!("{what}: client saw {got}\n  edge: {line}");
        assert!(
            line.contains(reason),
            "{what}: the refusal does not say {reason:?}: {line}"
        );
        assert!(edge.alive(), "{what} brought the edge down:\n{log}");
    };

    // A plain-HTTP WebSocket upgrade (no TLS): a 400 saying so, and a log line.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    sock.write_all(
        b"GET /tunnel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    expect(
        &mut edge,
        "websocket upgrade without TLS",
        "plain HTTP",
        answer,
    );

    // Bytes that are neither TLS nor HTTP.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(b"\x00\x01garbage").unwrap();
    expect(
        &mut edge,
        "garbage instead of TLS",
        "not TLS",
        String::new(),
    );

    // A valid connector certificate with the wrong ALPN, or none.
    let got = tls_attempt(port, client_config(&connector, &[b"h2"]), b"x");
    expect(&mut edge, "ALPN h2", "TLS handshake failed", got);
    let got = tls_attempt(port, client_config(&connector, &[b"underpass/1"]), b"x");
    expect(
        &mut edge,
        "QUIC's ALPN over TCP",
        "TLS handshake failed",
        got,
    );
    let got = tls_attempt(port, client_config(&connector, &[]), b"x");
    expect(&mut edge, "no ALPN", "wrong ALPN", got);

    // No client certificate.
    let no_cert = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(tls::load_roots(&ca).unwrap())
        .with_no_client_auth();
    let mut no_cert = no_cert;
    no_cert.alpn_protocols = vec![tcp_alpn.to_vec()];
    let got = tls_attempt(port, no_cert, b"x");
    expect(
        &mut edge,
        "no client certificate",
        "TLS handshake failed",
        got,
    );

    // A client's and an edge's certificate presented as a connector.
    let client = Credentials::load(&client_cert, &client_key, &ca).unwrap();
    let got = tls_attempt(port, client_config(&client, &[tcp_alpn]), b"x");
    expect(&mut edge, "client certificate", "WrongRole", got);
    let edge2 = Credentials::load(&edge2_cert, &edge2_key, &ca).unwrap();
    let got = tls_attempt(port, client_config(&edge2, &[tcp_alpn]), b"x");
    // (webpki refuses it first: an edge certificate allows no client authentication)
    expect(
        &mut edge,
        "edge certificate",
        "invalid peer certificate",
        got,
    );

    // A valid connector, then garbage instead of HTTP/2.
    let got = tls_attempt(
        port,
        client_config(&connector, &[tcp_alpn]),
        b"this is not the HTTP/2 connection preface\r\n\r\n\x00\x00\x00\x00",
    );
    expect(&mut edge, "garbage after the handshake", "dc1", got);

    // The listener is still there: a real connector over TCP gets its tunnel.
    let connector_config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &ca,
        },
        &[("everything", &backend_url)],
    );
    prepend_top_level(&connector_config, "transport = \"tcp\"");
    let _connector = start_connector(dir.path(), "connector", &connector_config);
    setup.wait_ready("everything", Duration::from_secs(30));
    wait_tunnels(
        &setup,
        &[("dc1", "tcp"), ("dc1", "tcp")],
        Duration::from_secs(10),
    );
    assert!(edge.alive());
}

/// An edge that drains closes its TCP tunnels as it closes QUIC ones: its connector hears the
/// edge end each of them (`closed by peer`), never a reset or a cut, even with calls going
/// through them up to the drain. Three rounds of SIGTERM, exit 0 and restart under load.
#[test]
fn an_edge_drain_closes_its_tcp_tunnels_cleanly() {
    const ROUNDS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(dir.path());
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(
        dir.path(),
        false,
        &[("ok", &["dc1"]), ("junk", &["dc1"])],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
    );
    // The drain's grace ends while an event stream still flows through the tunnels.
    prepend_top_level(&setup.config, "drain_grace = \"1s\"");
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
        &[
            ("ok", &backend.url("ok")),
            ("junk", &backend.url("junk-sse")),
        ],
    );
    prepend_top_level(&connector_config, "transport = \"tcp\"");
    let connector = start_connector(dir.path(), "connector", &connector_config);
    let mut rng = Rng::from_env("an_edge_drain_closes_its_tcp_tunnels_cleanly");
    let mut plan = Plan::new(&setup.url("ok"));
    plan.sleep_every = 0;
    plan.pause = Duration::from_millis(2);
    plan.deadline = Duration::from_secs(20);
    for round in 1..=ROUNDS {
        let mut edge = setup.start(dir.path());
        wait_tunnels(
            &setup,
            &[("dc1", "tcp"), ("dc1", "tcp")],
            Duration::from_secs(20),
        );
        let load = Load::start(&plan, &mut rng);
        load.wait_ok_after(Duration::ZERO, Duration::from_secs(20))
            .expect("no call went through the TCP tunnels");
        let stream = endless_stream(&setup.url("junk"));
        std::thread::sleep(Duration::from_millis(200));
        let term = Command::new("kill")
            .args(["-TERM", &edge.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(term.success(), "kill -TERM failed");
        let status = edge.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "round {round}: the edge exited {status}");
        let calls = load.finish();
        let streamed = stream.join().expect("stream reader");
        println!(
            "round {round}: {}; the event stream got {streamed} bytes before the edge cut it",
            summarize(&calls)
        );
    }
    let log = connector.log_text();
    let closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tunnel closed"))
        .collect();
    println!("the connector logged:\n{}", closed.join("\n"));
    assert!(
        closed.len() >= 2 * ROUNDS,
        "the connector logged {} tunnel ends for {ROUNDS} drains of its two tunnels:\n{log}",
        closed.len()
    );
    let unclean: Vec<&&str> = closed
        .iter()
        .filter(|l| !l.contains("closed by peer"))
        .collect();
    assert!(
        unclean.is_empty(),
        "tunnels the drain did not close cleanly:\n{}",
        unclean
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Opens a `tools/call` answered by an endless event stream and reads it until the edge cuts
/// it (at most 30 s); the reader returns how many bytes it got.
fn endless_stream(url: &str) -> std::thread::JoinHandle<usize> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}"#;
    let stream = http::EventStream::open(
        "POST",
        url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        body.as_bytes(),
    )
    .expect("open the event stream");
    assert_eq!(stream.status, 200, "the event stream was not opened");
    std::thread::spawn(move || stream.read_to_end(Duration::from_secs(30)))
}
