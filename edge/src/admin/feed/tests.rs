use super::*;

fn record(service: &str, outcome: Outcome) -> AuditRecord {
    AuditRecord {
        service: Some(service.into()),
        principal: Some("anonymous".into()),
        outcome,
        ..AuditRecord::default()
    }
}

#[test]
fn percentiles_are_nearest_rank_in_milliseconds() {
    assert_eq!(percentiles(&[]), None);
    let values: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
    assert_eq!(
        percentiles(&values),
        Some(Percentiles {
            p50: 50,
            p90: 90,
            p99: 99,
            over: 100
        })
    );
    let one = percentiles(&[1]).unwrap();
    assert_eq!((one.p50, one.p99), (1, 1), "under a millisecond rounds up");
}

#[test]
fn configured_services_are_counted_and_made_up_ones_are_not() {
    let feed = Feed::new(["ok"]);
    let ms = Duration::from_millis(2);
    feed.request_done(&record("ok", Outcome::Ok), ms);
    feed.request_done(&record("ok", Outcome::BackendError), ms);
    feed.request_done(&record("ok", Outcome::Denied), ms);
    for i in 0..1000 {
        feed.request_done(&record(&format!("made-up-{i}"), Outcome::Ok), ms);
    }
    let services = feed.services();
    assert_eq!(services.len(), 1);
    let ok = &services["ok"];
    assert_eq!((ok.requests, ok.errors, ok.denied), (3, 1, 1));
    assert_eq!(ok.latency_ms.unwrap().p50, 2);
    let (denials, total) = feed.denials();
    assert_eq!((denials.len(), total), (1, 1));
    assert!(feed.last_done().is_some());
}

#[test]
fn the_latency_window_is_bounded() {
    let feed = Feed::new(["ok"]);
    for _ in 0..WINDOW * 3 {
        feed.request_done(&record("ok", Outcome::Ok), Duration::from_millis(1));
    }
    let figures = &feed.services()["ok"];
    assert_eq!(figures.requests, (WINDOW * 3) as u64);
    assert_eq!(figures.latency_ms.unwrap().over, WINDOW);
}
