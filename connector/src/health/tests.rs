use std::collections::BTreeMap;
use std::sync::Arc;

use underpass_shared::doctor::{Check, Status};

use super::*;

fn edges() -> Vec<String> {
    vec!["edge-a:7844".into(), "edge-b:7844".into()]
}

#[test]
fn ready_only_after_the_checks_ran_clean_with_a_tunnel_up() {
    let none: BTreeMap<String, usize> = BTreeMap::new();
    let one: BTreeMap<String, usize> = [("edge-a:7844".to_owned(), 1)].into();
    let clean: Vec<Check> = Vec::new();
    let failing = vec![Check::fail(
        "service a backend",
        "cannot connect",
        "start it",
    )];

    let (code, body) = readiness(&edges(), &one, None);
    assert_eq!(code, 503, "not ready before the checks ran: {body}");
    assert_eq!(body["checked"], false);

    let (code, body) = readiness(&edges(), &none, Some(&clean));
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["tunnels"]["edge-b:7844"], 0);
    assert!(body["reasons"].to_string().contains("no tunnel"), "{body}");

    let (code, body) = readiness(&edges(), &one, Some(&failing));
    assert_eq!(code, 503);
    assert_eq!(body["problems"][0]["check"], "service a backend");
    assert_eq!(body["problems"][0]["todo"], "start it");

    let (code, body) = readiness(&edges(), &one, Some(&clean));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["tunnels"]["edge-a:7844"], 1);
}

#[test]
fn live_tunnels_count_down_when_dropped() {
    let live = Arc::new(LiveTunnels::default());
    let a = live.up("e");
    let b = live.up("e");
    assert_eq!(live.snapshot()["e"], 2);
    drop(a);
    assert_eq!(live.snapshot()["e"], 1);
    drop(b);
    assert_eq!(live.snapshot()["e"], 0);
}

#[test]
fn problems_are_logged_once_per_state_and_recoveries_once() {
    let fail = Check::fail("b", "down", "start");
    let warn = Check::warn("c", "soon", "renew");
    let told = BTreeMap::new();
    let first = [fail.clone(), warn.clone(), Check::pass("a", "ok")];
    assert_eq!(
        changes(&told, &first),
        vec![Change::Problem(&first[0]), Change::Problem(&first[1])]
    );
    let told: BTreeMap<String, Status> = first.iter().map(|c| (c.name.clone(), c.status)).collect();
    assert!(
        changes(&told, &first).is_empty(),
        "nothing new, nothing logged"
    );
    let later = [Check::pass("b", "up"), warn];
    assert_eq!(changes(&told, &later), vec![Change::Recovered("b".into())]);
}

#[test]
fn the_listener_answers_only_get_on_its_two_paths() {
    let health = Health::new(edges(), Arc::new(LiveTunnels::default()));
    let req = |method: &str, path: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    };
    assert_eq!(
        server::answer(&req("GET", "/healthz"), &health).status(),
        200
    );
    assert_eq!(
        server::answer(&req("GET", "/readyz"), &health).status(),
        503
    );
    let post = server::answer(&req("POST", "/readyz"), &health);
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_eq!(
        server::answer(&req("GET", "/metrics"), &health).status(),
        404
    );
    assert_eq!(
        server::answer(&req("GET", "/readyz/../x"), &health).status(),
        404
    );
}
