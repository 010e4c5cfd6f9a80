//! Certificates and CA bundles replaced on disk while the edge runs, with the real binaries:
//! the edge's certificate swapped under steady load is what new handshakes get, live tunnels
//! and calls go on (no failed call); a broken replacement keeps the last good certificate and
//! shows in `/readyz`; a CA bundle that gains a second CA admits connectors of the new CA, and
//! once the old CA is dropped from it, connectors of the old one are refused at their next
//! handshake while their live tunnels run on (rotation with overlap).

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use underpass_tests::faults::FaultBackend;
use underpass_tests::tls_client::TlsClient;
use underpass_tests::*;

const EDGE_EXTRA: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n";

/// Replaces `to` with the contents of `from`, atomically (a rename), as a deploy tool would.
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("next");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

fn readyz_problems(setup: &EdgeSetup) -> String {
    http::get(&setup.admin("/readyz"))
        .map(|r| r.json()["problems"].to_string())
        .unwrap_or_default()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Calls `echo` over TLS in a loop (a new connection, so a new handshake, each time) until
/// `stop`; returns (calls, failures).
fn tls_calls(
    client: TlsClient,
    port: u16,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let call = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"echo","arguments":{"message":"swap"}}});
        let (mut n, mut failed) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            match client.mcp_post(port, "/mcp/ok", &call) {
                Ok(r) if r.status == 200 && r.text().contains("echo: swap") => {}
                Ok(r) => failed.push(format!("{}: {}", r.status, r.text())),
                Err(e) => failed.push(format!("{e:?}")),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (n, failed)
    })
}

#[test]
fn edge_certificate_replaced_on_disk_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(dir.path());
    let d = Deployment::start_with(true, "ok", &backend.url("ok"), EDGE_EXTRA);
    let client = TlsClient::new(&d.pki.ca(), None);
    let before = client.server_serial(d.edge_setup.client_port).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let load = tls_calls(
        TlsClient::new(&d.pki.ca(), None),
        d.edge_setup.client_port,
        stop.clone(),
    );
    std::thread::sleep(Duration::from_secs(1));

    // A new edge certificate (same identity, new key and serial), swapped in: key, then cert.
    let (next_cert, next_key) = d.pki.issue("edge", "edge-next");
    let next_serial = underpass_pki::revocation::certificate_serial(
        &underpass_pki::inspect::read_certificate(&next_cert).unwrap(),
    )
    .unwrap();
    let closed_before = d.connector.log_text().matches("tunnel closed").count();
    replace(&next_key, &d.pki.dir.join("edge.key"));
    replace(&next_cert, &d.pki.dir.join("edge.crt"));
    wait_until(
        "the client listener serves the new certificate",
        Duration::from_secs(10),
        || {
            client
                .server_serial(d.edge_setup.client_port)
                .ok()
                .as_deref()
                == Some(&next_serial)
        },
    );
    assert_ne!(before, next_serial);
    let log = d.edge.log_text();
    assert!(log.contains("tunnel_cert reloaded"), "{log}");
    assert!(log.contains("clients_cert reloaded"), "{log}");
    std::thread::sleep(Duration::from_secs(1));

    // A broken replacement: the last good certificate stays, `/readyz` says what is wrong.
    std::fs::write(d.pki.dir.join("edge.crt"), "not a certificate\n").unwrap();
    wait_until("a problem in /readyz", Duration::from_secs(10), || {
        readyz_problems(&d.edge_setup).contains("tunnel_cert")
    });
    assert_eq!(
        client.server_serial(d.edge_setup.client_port).unwrap(),
        next_serial
    );
    replace(&next_cert, &d.pki.dir.join("edge.crt"));
    wait_until("the problem gone", Duration::from_secs(10), || {
        !readyz_problems(&d.edge_setup).contains("tunnel_cert")
    });

    stop.store(true, Ordering::Relaxed);
    let (calls, failed) = load.join().unwrap();
    println!("calls across the swaps: {calls}, failed: {}", failed.len());
    assert!(calls > 20, "{calls}");
    assert!(failed.is_empty(), "calls failed: {failed:#?}");
    assert_eq!(
        d.connector.log_text().matches("tunnel closed").count(),
        closed_before,
        "a live tunnel was dropped by the swap:\n{}",
        d.connector.log_text()
    );
}

#[test]
fn ca_bundle_rotation_with_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(dir.path());
    let old = Pki::init(&dir.path().join("pki"));
    old.issue("edge", "edge");
    let (c1, k1) = old.issue("connector", "dc1");
    let new = Pki::init(&dir.path().join("pki-new"));
    let (c2, k2) = new.issue("connector", "dc2");
    let old_ca = std::fs::read_to_string(old.ca()).unwrap();
    let new_ca = std::fs::read_to_string(new.ca()).unwrap();

    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1", "dc2"])], EDGE_EXTRA);
    let mut edge = setup.start(dir.path());
    let start = |name: &str, cert: &Path, key: &Path| -> Proc {
        let config = write_connector_config(
            dir.path(),
            &format!("{name}.toml"),
            name,
            setup.tunnel_port,
            ConnectorPki {
                cert,
                key,
                ca: &old.ca(),
            },
            &[("ok", &backend.url("ok"))],
        );
        start_connector(dir.path(), name, &config)
    };
    let dc1 = start("dc1", &c1, &k1);
    let mut dc2 = start("dc2", &c2, &k2);
    let count = |name: &str| setup.tunnels().iter().filter(|(c, _)| c == name).count();
    wait_until("dc1 up", Duration::from_secs(30), || count("dc1") == 2);
    // dc2's CA is not trusted yet: refused at the handshake (both CAs have the same name, so
    // webpki reports a bad signature rather than an unknown issuer).
    edge.wait_for_log("invalid peer certificate", Duration::from_secs(20));
    assert_eq!(count("dc2"), 0);

    // The bundle gains the new CA: dc2 gets in at its next dial, no restart of anything.
    std::fs::write(dir.path().join("bundle"), format!("{old_ca}{new_ca}")).unwrap();
    replace(&dir.path().join("bundle"), &old.ca());
    wait_until("dc2 admitted", Duration::from_secs(30), || {
        count("dc2") == 2
    });
    assert!(edge.log_text().contains("tunnel_ca reloaded"));

    // The old CA dropped: dc1's live tunnels run on; its next handshake is refused.
    std::fs::write(dir.path().join("bundle"), &new_ca).unwrap();
    replace(&dir.path().join("bundle"), &old.ca());
    edge.wait_for_log_count("tunnel_ca reloaded", 2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count("dc1"), 2, "live tunnels must run on");
    let refused_before = edge.log_text().matches("invalid peer certificate").count();
    drop(dc1);
    let _dc1_again = start("dc1", &c1, &k1);
    edge.wait_for_log_count(
        "invalid peer certificate",
        refused_before + 1,
        Duration::from_secs(30),
    );
    wait_until("dc1's old tunnels gone", Duration::from_secs(10), || {
        count("dc1") == 0
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count("dc1"), 0, "a connector of the dropped CA got in");
    assert_eq!(count("dc2"), 2);
    dc2.stop();
}
