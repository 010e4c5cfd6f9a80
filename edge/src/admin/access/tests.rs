use super::*;

fn cert(role: Role, name: &str) -> Peer {
    Peer::Certificate {
        role,
        name: name.to_owned(),
    }
}

const OBSERVED: &[&str] = &[
    "/metrics",
    "/",
    "/dashboard.js",
    "/dashboard.css",
    "/api/connectors",
    "/api/services",
    "/api/sessions",
    "/api/denials",
    "/api/audit",
    "/api/certificates",
    "/api/federation/names",
];
const MUTATING: &[&str] = &[
    "/api/connectors/dc1/drain",
    "/api/connectors/dc1/resume",
    "/api/sessions/end",
    "/api/reload",
];
const PROBES: &[&str] = &["/healthz", "/readyz", "/.well-known/jwks.json"];

fn allowed(a: &Access) -> bool {
    matches!(a, Access::Allow { .. })
}

#[test]
fn probes_are_open_on_every_listener_to_everyone() {
    for listener in [
        Listener::Loopback,
        Listener::Network { tls: false },
        Listener::Network { tls: true },
    ] {
        for peer in [
            Peer::Anonymous,
            Peer::Revoked,
            cert(Role::Client, "alice"),
            cert(Role::Operator, "ops"),
        ] {
            for path in PROBES {
                assert!(
                    allowed(&decide(listener, &peer, "GET", path)),
                    "{listener:?} {peer:?} {path}"
                );
            }
        }
    }
}

#[test]
fn loopback_needs_no_identity_for_views_or_changes() {
    for path in OBSERVED {
        let a = decide(Listener::Loopback, &Peer::Anonymous, "GET", path);
        assert!(allowed(&a), "{path}: {a:?}");
    }
    for path in MUTATING {
        let a = decide(Listener::Loopback, &Peer::Anonymous, "POST", path);
        assert_eq!(
            a,
            Access::Allow {
                route: Route::of(path).unwrap(),
                actor: "loopback".into()
            },
            "{path}"
        );
    }
    // A certificate shown on loopback names the actor.
    let a = decide(
        Listener::Loopback,
        &cert(Role::Operator, "ops"),
        "POST",
        "/api/reload",
    );
    assert_eq!(
        a,
        Access::Allow {
            route: Route::Reload,
            actor: "operator:ops".into()
        }
    );
}

#[test]
fn a_network_listener_without_tls_refuses_views_and_says_what_to_configure() {
    let net = Listener::Network { tls: false };
    for (method, paths) in [("GET", OBSERVED), ("POST", MUTATING)] {
        for path in paths {
            match decide(net, &Peer::Anonymous, method, path) {
                Access::Forbidden { reason } => {
                    assert!(reason.contains("[admin] cert and key"), "{reason}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_network_listener_with_tls_needs_an_operator() {
    let net = Listener::Network { tls: true };
    for (method, paths) in [("GET", OBSERVED), ("POST", MUTATING)] {
        for path in paths {
            assert!(
                matches!(
                    decide(net, &Peer::Anonymous, method, path),
                    Access::Unauthenticated { .. }
                ),
                "{path}"
            );
            assert!(
                matches!(
                    decide(net, &Peer::Revoked, method, path),
                    Access::Forbidden { .. }
                ),
                "{path}"
            );
            for role in [Role::Client, Role::Connector, Role::Edge] {
                match decide(net, &cert(role, "x"), method, path) {
                    Access::Forbidden { reason } => {
                        assert!(reason.contains("not an operator"), "{reason}")
                    }
                    other => panic!("{role} {path}: {other:?}"),
                }
            }
            let a = decide(net, &cert(Role::Operator, "ops"), method, path);
            assert_eq!(
                a,
                Access::Allow {
                    route: Route::of(path).unwrap(),
                    actor: "operator:ops".into()
                },
                "{path}"
            );
        }
    }
}

#[test]
fn wrong_methods_get_405_with_allow_before_any_identity_check() {
    let net = Listener::Network { tls: true };
    for path in OBSERVED.iter().chain(PROBES) {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
            assert_eq!(
                decide(net, &Peer::Anonymous, method, path),
                Access::MethodNotAllowed { allow: "GET" },
                "{method} {path}"
            );
        }
        assert!(allowed(&decide(
            Listener::Loopback,
            &Peer::Anonymous,
            "HEAD",
            path
        )));
    }
    for path in MUTATING {
        for method in ["GET", "HEAD", "PUT", "DELETE"] {
            assert_eq!(
                decide(Listener::Loopback, &Peer::Anonymous, method, path),
                Access::MethodNotAllowed { allow: "POST" },
                "{method} {path}"
            );
        }
    }
}

#[test]
fn unknown_paths_and_odd_connector_names_are_404() {
    for path in [
        "/api",
        "/api/",
        "/api/secrets",
        "/api/connectors/",
        "/api/connectors//drain",
        "/api/connectors/dc1/",
        "/api/connectors/dc1/delete",
        "/api/connectors/dc1/drain/x",
        "/api/connectors/%2e%2e/drain",
        "/api/connectors/a b/drain",
        "/healthz/",
        "/metrics/x",
        "//api/reload",
    ] {
        assert_eq!(
            decide(Listener::Loopback, &Peer::Anonymous, "POST", path),
            Access::NotFound,
            "{path}"
        );
    }
    let long = format!("/api/connectors/{}/drain", "a".repeat(129));
    assert_eq!(Route::of(&long), None);
    assert_eq!(
        Route::of("/api/connectors/dc-1.eu_2/drain"),
        Some(Route::Drain("dc-1.eu_2".into()))
    );
}

#[test]
fn listeners_are_classified_by_their_bound_address() {
    let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
    assert_eq!(Listener::of(at("127.0.0.1:9"), false), Listener::Loopback);
    assert_eq!(Listener::of(at("127.0.0.2:9"), true), Listener::Loopback);
    assert_eq!(Listener::of(at("[::1]:9"), false), Listener::Loopback);
    assert_eq!(
        Listener::of(at("0.0.0.0:9"), false),
        Listener::Network { tls: false }
    );
    assert_eq!(
        Listener::of(at("192.0.2.2:9"), true),
        Listener::Network { tls: true }
    );
    assert_eq!(
        Listener::of(at("[::]:9"), true),
        Listener::Network { tls: true }
    );
}

#[test]
fn pages_elsewhere_cannot_read_or_change_a_loopback_admin() {
    let from = |host, origin, fetch_site| Provenance {
        host,
        origin,
        fetch_site,
    };
    let loopback = Listener::Loopback;
    // curl and scrapers: a loopback Host, no Origin.
    for host in [
        "127.0.0.1:9090",
        "localhost:9090",
        "[::1]:9090",
        "127.0.0.2",
        "LOCALHOST",
    ] {
        assert!(check_provenance(loopback, Kind::Mutate, from(Some(host), None, None)).is_ok());
    }
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1.
    let rebound = from(Some("evil.example:9090"), None, Some("same-origin"));
    assert!(check_provenance(loopback, Kind::Observe, rebound).is_err());
    assert!(check_provenance(loopback, Kind::Observe, from(None, None, None)).is_err());
    // Probes stay open whatever the Host (load balancers, kubelets).
    assert!(check_provenance(loopback, Kind::Probe, rebound).is_ok());
    // A cross-site POST from a page the operator visits.
    let csrf = from(
        Some("127.0.0.1:9090"),
        Some("https://evil.example"),
        Some("cross-site"),
    );
    assert!(check_provenance(loopback, Kind::Mutate, csrf).is_err());
    let csrf_old_browser = from(Some("127.0.0.1:9090"), Some("https://evil.example"), None);
    assert!(check_provenance(loopback, Kind::Mutate, csrf_old_browser).is_err());
    // The dashboard's own requests.
    let own = from(
        Some("127.0.0.1:9090"),
        Some("http://127.0.0.1:9090"),
        Some("same-origin"),
    );
    assert!(check_provenance(loopback, Kind::Mutate, own).is_ok());
    assert!(
        check_provenance(loopback, Kind::Observe, csrf).is_ok(),
        "a read cannot be seen"
    );
    // Off loopback the operator certificate guards reads; changes still need their origin.
    let network = Listener::Network { tls: true };
    let csrf = from(
        Some("edge.example:9090"),
        Some("https://evil.example"),
        None,
    );
    assert!(check_provenance(network, Kind::Observe, csrf).is_ok());
    assert!(check_provenance(network, Kind::Mutate, csrf).is_err());
}
