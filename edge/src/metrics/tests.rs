use std::time::{Duration, Instant};

use super::capped::{Capped, OTHER};
use super::phases::Phases;
use super::*;
use crate::federation::state::Federation;
use underpass_audit::{AuditRecord, ExchangeTiming, Outcome};

#[test]
fn label_values_come_from_the_configuration_or_a_fixed_set() {
    let revocations = Revocations::load(None).unwrap();
    let metrics = Metrics::new(
        ["ok"],
        Arc::new(Tunnels::default()),
        revocations,
        None,
        &Tracer::off(),
        Arc::new(Federation::new(&Default::default())),
    );
    let record = |service: Option<&str>, method: Option<&str>, outcome| AuditRecord {
        service: service.map(str::to_owned),
        mcp_method: method.map(str::to_owned),
        outcome,
        ..AuditRecord::default()
    };
    let ms = Duration::from_millis(3);
    let done = |rec: AuditRecord| metrics.requests.request_done(&rec, Instant::now(), ms);
    done(record(Some("ok"), Some("tools/call"), Outcome::Ok));
    done(record(Some("ok"), Some("tools/call"), Outcome::Ok));
    done(record(Some("ok"), Some("tools/call"), Outcome::Denied));
    // A client's made-up service and method names are not label values.
    for i in 0..50 {
        let (service, method) = (format!("svc{i}"), format!("x/{i}"));
        done(record(Some(&service), Some(&method), Outcome::NotFound));
    }
    done(record(None, None, Outcome::NotFound));
    let text = metrics.render().unwrap();
    let line = |l: &str| text.lines().any(|t| t == l);
    assert!(
        line(r#"underpass_requests_total{service="ok",method="tools/call",outcome="ok"} 2"#),
        "{text}"
    );
    assert!(
        line(r#"underpass_requests_total{service="ok",method="tools/call",outcome="denied"} 1"#),
        "{text}"
    );
    assert!(
        line(
            r#"underpass_requests_total{service="unknown",method="other",outcome="not_found"} 50"#
        ),
        "{text}"
    );
    assert!(
        line(r#"underpass_requests_total{service="-",method="-",outcome="not_found"} 1"#),
        "{text}"
    );
    assert!(!text.contains("svc1"), "{text}");
    assert!(
        line(r#"underpass_request_duration_seconds_count{service="ok"} 3"#),
        "{text}"
    );
    assert!(text.contains("# TYPE underpass_tunnels gauge"), "{text}");
}

#[test]
fn a_list_that_broke_shows_as_failures_and_staleness() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revoked.txt");
    std::fs::write(&path, "0a1b spiffe://underpass.local/connector/dc1 -\n").unwrap();
    let revocations = Revocations::load(Some(path.clone())).unwrap();
    let metrics = Metrics::new(
        ["ok"],
        Arc::new(Tunnels::default()),
        revocations.clone(),
        None,
        &Tracer::off(),
        Arc::new(Federation::new(&Default::default())),
    );
    let text = metrics.render().unwrap();
    assert!(
        text.contains("underpass_revocation_list_reload_failures_total 0\n"),
        "{text}"
    );
    assert!(
        text.contains("underpass_revocation_list_stale_seconds 0.0\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");

    std::fs::remove_file(&path).unwrap();
    revocations.reload_now();
    let text = metrics.render().unwrap();
    assert!(
        text.contains("underpass_revocation_list_reload_failures_total 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("underpass_revocation_list_stale_seconds 0.0\n"),
        "{text}"
    );
}

fn fresh(services: &[&str]) -> Metrics {
    Metrics::new(
        services.iter().copied(),
        Arc::new(Tunnels::default()),
        Revocations::load(None).unwrap(),
        None,
        &Tracer::off(),
        Arc::new(Federation::new(&Default::default())),
    )
}

#[test]
fn phases_split_the_time_to_the_response_head() {
    let ms = Duration::from_millis;
    let p = Phases::split(ms(2), ms(30), Some(ms(25)));
    assert_eq!(p.edge, ms(2));
    assert_eq!(p.tunnel, Some(ms(5)));
    assert_eq!(p.backend, Some(ms(25)));
    // A connector claiming more than the whole exchange gets the exchange, not a negative
    // tunnel time.
    let p = Phases::split(ms(1), ms(10), Some(ms(10_000)));
    assert_eq!((p.tunnel, p.backend), (Some(Duration::ZERO), Some(ms(10))));
    // An older connector reports nothing: the exchange is all tunnel.
    let p = Phases::split(ms(1), ms(10), None);
    assert_eq!((p.tunnel, p.backend), (Some(ms(10)), None));
    let observed: Vec<_> = p.observed().map(|(name, _)| name).collect();
    assert_eq!(observed, ["edge", "tunnel"]);
    let observed: Vec<_> = Phases::edge_only(ms(4)).observed().collect();
    assert_eq!(observed, [("edge", ms(4))]);
}

#[test]
fn requests_through_a_tunnel_observe_three_phases_and_refusals_one() {
    let metrics = fresh(&["svc"]);
    let started = Instant::now();
    let through = AuditRecord {
        service: Some("svc".into()),
        outcome: Outcome::Ok,
        exchange: Some(ExchangeTiming {
            sent_at: started + Duration::from_millis(1),
            head_after: Duration::from_millis(20),
            backend: Some(Duration::from_millis(15)),
        }),
        bytes_in: Some(100),
        bytes_out: Some(250),
        ..AuditRecord::default()
    };
    let r = &metrics.requests;
    r.request_done(&through, started, Duration::from_millis(22));
    let refused = AuditRecord {
        service: Some("svc".into()),
        outcome: Outcome::Denied,
        rule: Some("no-delete".into()),
        bytes_in: Some(7),
        ..AuditRecord::default()
    };
    r.request_done(&refused, started, Duration::from_millis(1));
    let limited = AuditRecord {
        service: Some("svc".into()),
        outcome: Outcome::RateLimited,
        ..AuditRecord::default()
    };
    r.request_done(&limited, started, Duration::from_millis(1));
    let text = metrics.render().unwrap();
    let line = |l: &str| text.lines().any(|t| t == l);
    for (phase, n) in [("edge", 3), ("tunnel", 1), ("backend", 1)] {
        assert!(
            line(&format!(
                r#"underpass_request_phase_seconds_count{{service="svc",phase="{phase}"}} {n}"#
            )),
            "{phase}: {text}"
        );
    }
    assert!(
        line(r#"underpass_request_phase_seconds_sum{service="svc",phase="backend"} 0.015"#),
        "{text}"
    );
    assert!(
        line(r#"underpass_denials_total{service="svc",rule="no-delete"} 1"#),
        "{text}"
    );
    assert!(
        line(r#"underpass_rate_limited_total{service="svc",rule="-"} 1"#),
        "{text}"
    );
    assert!(
        line(r#"underpass_client_bytes_total{service="svc",direction="in"} 107"#),
        "{text}"
    );
    assert!(
        line(r#"underpass_client_bytes_total{service="svc",direction="out"} 250"#),
        "{text}"
    );
}

#[test]
fn rule_labels_are_capped() {
    let metrics = fresh(&["svc"]);
    for i in 0..request::MAX_RULES + 40 {
        let denied = AuditRecord {
            service: Some("svc".into()),
            outcome: Outcome::Denied,
            rule: Some(format!("rule-{i}")),
            ..AuditRecord::default()
        };
        metrics
            .requests
            .request_done(&denied, Instant::now(), Duration::ZERO);
    }
    let text = metrics.render().unwrap();
    let series = text
        .lines()
        .filter(|l| l.starts_with("underpass_denials_total{"))
        .count();
    assert_eq!(series, request::MAX_RULES + 1, "{text}");
    assert!(
        text.contains(r#"underpass_denials_total{service="svc",rule="other"} 40"#),
        "{text}"
    );
}

#[test]
fn capped_labels_keep_what_they_admitted() {
    let capped = Capped::new(2);
    assert_eq!(&*capped.label("a"), "a");
    assert_eq!(&*capped.label("b"), "b");
    assert_eq!(&*capped.label("c"), OTHER);
    assert_eq!(&*capped.label("a"), "a");
}

#[test]
fn an_event_stream_counts_until_its_guard_drops() {
    let metrics = fresh(&["svc"]);
    let open = |m: &Metrics| {
        m.render()
            .unwrap()
            .lines()
            .any(|l| l == r#"underpass_event_streams{service="svc"} 1"#)
    };
    let stream = metrics.requests.event_stream(Some("svc"));
    let other = metrics.requests.event_stream(Some("made-up"));
    assert!(open(&metrics));
    drop(stream);
    assert!(!open(&metrics));
    let text = metrics.render().unwrap();
    assert!(!text.contains("made-up"), "{text}");
    drop(other);
}

#[test]
fn tunnel_connects_are_counted_per_connector_with_a_cap() {
    let tunnels = Arc::new(Tunnels::default());
    for i in 0..crate::tunnels::connects::MAX_CONNECTORS + 5 {
        tunnels.connects.count(&format!("c{i}"), "quic");
    }
    tunnels.connects.count("dc1", "quic");
    tunnels.connects.count("c0", "tcp");
    tunnels.connects.count("c0", "tcp");
    let metrics = Metrics::new(
        ["svc"],
        tunnels,
        Revocations::load(None).unwrap(),
        None,
        &Tracer::off(),
        Arc::new(Federation::new(&Default::default())),
    );
    let text = metrics.render().unwrap();
    assert!(
        text.contains("# TYPE underpass_tunnel_connects counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"underpass_tunnel_connects_total{connector="other",transport="quic"} 6"#),
        "{text}"
    );
    assert!(
        text.contains(r#"underpass_tunnel_connects_total{connector="c0",transport="tcp"} 2"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE underpass_tunnel_rtt_seconds gauge"),
        "{text}"
    );
}

fn stats_of(services: &[&str], edges: usize) -> underpass_proto::control::Stats {
    use underpass_proto::control::{EdgeConnects, ServiceStats, Stats};
    Stats {
        services: services
            .iter()
            .map(|s| ServiceStats {
                service: (*s).to_owned(),
                ok: 5,
                bytes_in: 10,
                ..ServiceStats::default()
            })
            .collect(),
        stdio_processes: 1,
        connects: (0..edges)
            .map(|i| EdgeConnects {
                edge: format!("edge{i}:7443"),
                connects: 2,
            })
            .collect(),
        ..Stats::default()
    }
}

#[test]
fn connector_figures_keep_served_services_only_and_the_latest_snapshot() {
    let tunnels = Arc::new(Tunnels::default());
    let store = &tunnels.connector_stats;
    let serves = |s: &str| s == "svc";
    let t0 = Instant::now();
    store
        .record("dc1", stats_of(&["svc", "not-here", "svc"], 1), serves, t0)
        .unwrap();
    // A later snapshot replaces the earlier one (cumulative figures: never added up).
    store
        .record("dc1", stats_of(&["svc"], 1), serves, t0)
        .unwrap();
    let metrics = Metrics::new(
        ["svc"],
        tunnels.clone(),
        Revocations::load(None).unwrap(),
        None,
        &Tracer::off(),
        Arc::new(Federation::new(&Default::default())),
    );
    let text = metrics.render().unwrap();
    let line = |l: &str| text.lines().any(|t| t == l);
    assert!(
        line(r#"underpass_connector_exchanges_total{connector="dc1",service="svc",result="ok"} 5"#),
        "{text}"
    );
    assert!(
        line(
            r#"underpass_connector_backend_bytes_total{connector="dc1",service="svc",direction="in"} 10"#
        ),
        "{text}"
    );
    assert!(
        line(r#"underpass_connector_stdio_processes{connector="dc1"} 1"#),
        "{text}"
    );
    assert!(
        line(r#"underpass_connector_tunnel_connects_total{connector="dc1",edge="edge0:7443"} 2"#),
        "{text}"
    );
    assert!(!text.contains("not-here"), "{text}");
}

#[test]
fn connector_figures_are_bounded_and_expire() {
    use crate::tunnels::stats::{ConnectorStats, Refused, KEEP_FOR, LOG_EVERY, MAX_ENTRIES};
    let store = ConnectorStats::default();
    let t0 = Instant::now();
    let all = |_: &str| true;
    // A snapshot with too many entries is refused whole.
    assert_eq!(
        store.record("dc1", stats_of(&["svc"], MAX_ENTRIES), all, t0),
        Err(Refused::TooManyEntries(MAX_ENTRIES + 1))
    );
    assert!(store.current(t0).is_empty());
    // Refusals are logged at most once a minute.
    assert!(store.log_refusal(t0));
    assert!(!store.log_refusal(t0 + Duration::from_secs(59)));
    assert!(store.log_refusal(t0 + LOG_EVERY));
    // At most MAX_CONNECTORS connectors are kept; one already kept may update.
    for i in 0..crate::tunnels::connects::MAX_CONNECTORS {
        store
            .record(&format!("c{i}"), stats_of(&["svc"], 0), all, t0)
            .unwrap();
    }
    assert_eq!(
        store.record("one-more", stats_of(&["svc"], 0), all, t0),
        Err(Refused::TooManyConnectors)
    );
    store.record("c0", stats_of(&["svc"], 0), all, t0).unwrap();
    // Edge names are cut to printable characters and a bounded length.
    let mut odd = stats_of(&[], 1);
    odd.connects[0].edge = format!("ed\nge{}", "x".repeat(500));
    store.record("c1", odd, all, t0).unwrap();
    let c1 = store
        .current(t0)
        .into_iter()
        .find(|(n, _)| n == "c1")
        .unwrap()
        .1;
    assert!(c1.connects[0].edge.starts_with("edgex") && c1.connects[0].edge.len() <= 128);
    // Figures go KEEP_FOR after their last snapshot.
    let later = t0 + KEEP_FOR;
    store
        .record("fresh", stats_of(&["svc"], 0), all, later)
        .unwrap();
    let names: Vec<_> = store.current(later).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["fresh"]);
}
