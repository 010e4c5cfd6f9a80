use super::*;

#[test]
fn a_snapshot_holds_cumulative_figures_of_configured_services_only() {
    let stats = ConnectorStats::new(["a", "b"]);
    stats.served("a", Served::Ok);
    stats.served("a", Served::Ok);
    stats.served("a", Served::BackendError);
    stats.served("b", Served::Refused);
    stats.served("nope", Served::Ok);
    stats.bytes("a", 10, 200);
    stats.bytes("nope", 1, 1);
    stats.connected("edge:7443");
    stats.connected("edge:7443");
    let held = stats.in_flight();
    let snap = stats.snapshot(1, 2);
    assert_eq!(snap.services.len(), 2);
    let a = &snap.services[0];
    assert_eq!(
        (
            a.service.as_str(),
            a.ok,
            a.backend_error,
            a.refused,
            a.bytes_in,
            a.bytes_out
        ),
        ("a", 2, 1, 0, 10, 200)
    );
    assert_eq!(snap.services[1].refused, 1);
    assert_eq!((snap.stdio_processes, snap.bridge_sessions), (1, 2));
    assert_eq!(snap.in_flight, 1);
    assert_eq!(snap.connects.len(), 1);
    assert_eq!(snap.connects[0].connects, 2);
    drop(held);
    // Cumulative: a later snapshot never goes back.
    stats.served("a", Served::Ok);
    let later = stats.snapshot(0, 0);
    assert_eq!(later.in_flight, 0);
    assert_eq!(later.services[0].ok, 3);
}
