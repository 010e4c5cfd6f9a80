use super::*;

fn at(secs: u64, start: Instant) -> Instant {
    start + Duration::from_secs(secs)
}

#[test]
fn a_session_keeps_its_uris_per_service_until_it_unsubscribes() {
    let s = Subscribed::default();
    let now = Instant::now();
    s.subscribe("a", "alice", "docs", "file:///x", now).unwrap();
    s.subscribe("a", "alice", "docs", "file:///y", now).unwrap();
    s.subscribe("a", "alice", "wiki", "wiki://z", now).unwrap();
    // Subscribing again changes nothing.
    s.subscribe("a", "alice", "docs", "file:///x", now).unwrap();
    assert_eq!(s.uris("a", "docs"), ["file:///x", "file:///y"]);
    assert_eq!(s.uris("a", "wiki"), ["wiki://z"]);
    assert!(s.uris("b", "docs").is_empty(), "another session has none");
    s.unsubscribe("a", "docs", "file:///x", now);
    s.unsubscribe("a", "docs", "file:///never", now);
    assert_eq!(s.uris("a", "docs"), ["file:///y"]);
    assert!(s.has("a", "docs", "file:///y"));
    assert!(!s.has("a", "docs", "file:///x"));
    assert!(
        !s.has("a", "wiki", "file:///y"),
        "the service is part of it"
    );
}

#[test]
fn a_watching_stream_sees_each_change_and_the_end_of_the_session() {
    let s = Subscribed::default();
    let now = Instant::now();
    let mut rx = s.watch("a", "alice", now).unwrap();
    assert!(!rx.has_changed().unwrap(), "nothing changed yet");
    s.subscribe("a", "alice", "docs", "file:///x", now).unwrap();
    assert!(rx.has_changed().unwrap());
    rx.borrow_and_update();
    // Neither a repeated subscription nor an unknown unsubscription is a change.
    s.subscribe("a", "alice", "docs", "file:///x", now).unwrap();
    s.unsubscribe("a", "docs", "file:///other", now);
    assert!(!rx.has_changed().unwrap());
    s.unsubscribe("a", "docs", "file:///x", now);
    assert!(rx.has_changed().unwrap());
    s.end("a");
    assert!(rx.has_changed().is_err(), "the session is gone");
    assert!(s.uris("a", "docs").is_empty());
    assert_eq!(s.size(), (0, 0), "everything it held is given back");
}

#[test]
fn a_session_may_hold_as_many_uris_as_one_listen_names() {
    let s = Subscribed::default();
    let now = Instant::now();
    for i in 0..MAX_RESOURCE_SUBSCRIPTIONS {
        s.subscribe("a", "alice", "docs", &format!("u{i}"), now)
            .unwrap();
    }
    assert_eq!(
        s.subscribe("a", "alice", "docs", "one-more", now),
        Err(Refused::Session)
    );
    // Another session of the same caller still may.
    s.subscribe("b", "alice", "docs", "one-more", now).unwrap();
}

#[test]
fn one_principal_cannot_take_what_others_need() {
    let s = Subscribed::default();
    let now = Instant::now();
    let long = "x".repeat(4000);
    let mut refused = None;
    'sessions: for session in 0..1000 {
        for i in 0..MAX_RESOURCE_SUBSCRIPTIONS {
            let uri = format!("{long}{i}");
            if let Err(e) = s.subscribe(&format!("m{session}"), "mallory", "docs", &uri, now) {
                refused = Some(e);
                break 'sessions;
            }
        }
    }
    assert_eq!(refused, Some(Refused::Principal));
    let (_, bytes) = s.size();
    assert!(bytes <= PRINCIPAL_BYTES, "{bytes}");
    // Someone else is not affected.
    s.subscribe("a", "alice", "docs", "file:///x", now).unwrap();
    assert_eq!(s.uris("a", "docs"), ["file:///x"]);
}

#[test]
fn the_edge_as_a_whole_is_bounded() {
    let s = Subscribed::default();
    let now = Instant::now();
    let long = "x".repeat(4000);
    let mut refused = None;
    'principals: for p in 0..100 {
        for session in 0..1000 {
            let uri = format!("{long}{session}");
            if let Err(e) = s.subscribe(
                &format!("{p}/{session}"),
                &format!("p{p}"),
                "docs",
                &uri,
                now,
            ) {
                if e == Refused::Edge {
                    refused = Some(e);
                    break 'principals;
                }
                break;
            }
        }
    }
    assert_eq!(refused, Some(Refused::Edge));
    assert!(s.size().1 <= EDGE_BYTES);
}

#[test]
fn idle_sessions_are_forgotten_unless_a_stream_watches_them() {
    let s = Subscribed::default();
    let start = Instant::now();
    s.subscribe("idle", "alice", "docs", "file:///x", start)
        .unwrap();
    s.subscribe("watched", "alice", "docs", "file:///x", start)
        .unwrap();
    let _rx = s.watch("watched", "alice", start).unwrap();
    s.subscribe("busy", "alice", "docs", "file:///x", at(250, start))
        .unwrap();
    assert_eq!(s.forget_idle(Duration::from_secs(300), at(100, start)), 0);
    assert_eq!(s.forget_idle(Duration::from_secs(300), at(300, start)), 1);
    assert!(s.uris("idle", "docs").is_empty());
    assert_eq!(s.uris("watched", "docs"), ["file:///x"]);
    assert_eq!(s.uris("busy", "docs"), ["file:///x"]);
}
