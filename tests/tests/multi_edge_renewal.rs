//! Renewal with several edges, with the real binaries: a connector enrolled at edge A (which
//! issues 60-second certificates) also keeps tunnels to edge B, which does not issue. Each
//! renewal goes through one tunnel to A; every other tunnel (A's second, both of B's)
//! presents the new certificate with proof of its key (`Reauth`) and runs on past the old
//! certificate's end. Calls through both edges never fail, and no tunnel closes.

use std::path::Path;
use std::time::Duration;

use underpass_tests::faults::{FaultBackend, Rng};
use underpass_tests::identity::{enroll, enrolled_config, not_after, token, ENROLLING_EDGE};
use underpass_tests::load::{summarize, Load, Outcome, Plan};
use underpass_tests::*;

const PLAIN_EDGE: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n";

fn edge_home(root: &Path, name: &str) -> std::path::PathBuf {
    let home = root.join(name);
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(root.join("pki"), home.join("pki")).unwrap();
    home
}

#[test]
fn tunnels_to_an_edge_that_did_not_issue_outlive_the_old_certificate() {
    let mut rng = Rng::from_env("tunnels_to_an_edge_that_did_not_issue");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pki = Pki::init(&root.join("pki"));
    pki.issue("edge", "edge");
    pki.issuer(false);

    let home_a = edge_home(root, "a");
    let issuing = ENROLLING_EDGE.replace("cert_ttl = \"1h\"", "cert_ttl = \"60s\"");
    let setup_a = EdgeSetup::write(&home_a, false, &[("ok", &["dc1"])], &issuing);
    let mut edge_a = setup_a.start(&home_a);
    let home_b = edge_home(root, "b");
    let setup_b = EdgeSetup::write(&home_b, false, &[("ok", &["dc1"])], PLAIN_EDGE);
    let mut edge_b = setup_b.start(&home_b);

    let dc1 = root.join("dc1");
    let out = enroll(&token(&pki.dir, "dc1", setup_a.tunnel_port, "15m"), &dc1);
    assert!(out.status.success(), "enroll failed:\n{}", show(&out));
    let first_end = not_after(&dc1.join("dc1.crt"));

    let backend = FaultBackend::start(root);
    let config = enrolled_config(
        root,
        "connector.toml",
        &dc1,
        "dc1",
        setup_a.tunnel_port,
        &[("ok", &backend.url("ok"))],
    );
    set_connector_edges(
        &config,
        &[
            format!("127.0.0.1:{}", setup_a.tunnel_port),
            format!("127.0.0.1:{}", setup_b.tunnel_port),
        ],
    );
    let mut connector = start_connector(root, "connector", &config);
    setup_a.wait_ready("ok", Duration::from_secs(30));
    setup_b.wait_ready("ok", Duration::from_secs(30));
    edge_b.wait_for_log_count("tunnel up", 2, Duration::from_secs(30));

    let mut through = |url: String| {
        let mut plan = Plan::new(&url);
        plan.workers = 2;
        Load::start(&plan, &mut rng)
    };
    let load_a = through(setup_a.url("ok"));
    let load_b = through(setup_b.url("ok"));
    // Renewals at about 40 s and 80 s after issuance; the first certificate ends at 60 s,
    // the second at about 100 s: the tunnels to B outlive the first only by re-authenticating.
    connector.wait_for_log_count("certificate renewed", 2, Duration::from_secs(150));
    edge_b.wait_for_log_count(
        "tunnel re-authenticated with a renewed certificate",
        4,
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(3));
    let (calls_a, calls_b) = (load_a.finish(), load_b.finish());
    assert!(
        time::OffsetDateTime::now_utc() > first_end,
        "the test ended before the first certificate did"
    );
    println!("through A: {}", summarize(&calls_a));
    println!("through B: {}", summarize(&calls_b));
    for (edge, calls) in [("A", &calls_a), ("B", &calls_b)] {
        assert!(!calls.is_empty(), "no calls through {edge}");
        let failed: Vec<_> = calls.iter().filter(|c| c.outcome != Outcome::Ok).collect();
        assert!(
            failed.is_empty(),
            "calls through {edge} failed: {failed:#?}"
        );
    }

    // Every tunnel came up once and stayed: none expired, none was dialled again.
    for (name, edge) in [("A", &edge_a), ("B", &edge_b)] {
        let log = edge.log_text();
        assert_eq!(log.matches("tunnel up").count(), 2, "edge {name}:\n{log}");
        assert!(!log.contains("certificate expired"), "edge {name}:\n{log}");
        assert!(
            !log.contains("re-authentication refused"),
            "edge {name}:\n{log}"
        );
    }
    // A re-authenticated its tunnel that did not carry each renewal.
    assert!(
        edge_a
            .log_text()
            .matches("tunnel re-authenticated with a renewed certificate")
            .count()
            >= 2,
        "{}",
        edge_a.log_text()
    );
    let log = connector.log_text();
    assert!(!log.contains("tunnel closed"), "{log}");
    assert_eq!(log.matches("tunnel up").count(), 4, "{log}");
    edge_a.stop();
    edge_b.stop();
}
