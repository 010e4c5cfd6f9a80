use super::*;
use crate::control::{EdgeControl, EdgeOutput, Limits, Refused};
use crate::frame::{self, MAX_FRAME_LEN, PROTOCOL_VERSION};

fn hello(capabilities: &[&str]) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        connector: "dc1".into(),
        services: vec!["everything".into()],
        build: "test".into(),
        capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn welcome(capabilities: &[&str]) -> Welcome {
    Welcome {
        edge: "edge-1".into(),
        limits: Limits {
            max_request_body: 1 << 20,
            max_concurrent_exchanges: 16_384,
        },
        heartbeat_ms: 2000,
        capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn bytes(msg: &Control) -> Vec<u8> {
    frame::encode(msg).unwrap()
}

fn started(capabilities: &[&str]) -> ConnectorControl {
    let mut c = ConnectorControl::new(hello(capabilities));
    assert_eq!(
        c.start().unwrap(),
        [ConnectorOutput::Send(Control::Hello(hello(capabilities)))]
    );
    c
}

/// A connector announcing `ours`, welcomed by an edge announcing `theirs`.
fn established(ours: &[&str], theirs: &[&str]) -> ConnectorControl {
    let mut c = started(ours);
    c.handle_bytes(&bytes(&Control::Welcome(welcome(theirs))))
        .unwrap();
    assert!(c.is_established());
    c
}

fn unknown_frame() -> Vec<u8> {
    #[derive(serde::Serialize)]
    enum Newer {
        Drain { deadline_ms: u64 },
        Ping,
    }
    [
        frame::encode(&Newer::Drain { deadline_ms: 1 }).unwrap(),
        frame::encode(&Newer::Ping).unwrap(),
    ]
    .concat()
}

#[test]
fn hello_then_welcome() {
    let mut c = started(&[]);
    assert!(!c.is_established());
    let wire = bytes(&Control::Welcome(welcome(&["Drain"])));
    for b in &wire[..wire.len() - 1] {
        assert_eq!(c.handle_bytes(std::slice::from_ref(b)).unwrap(), []);
    }
    assert_eq!(
        c.handle_bytes(&wire[wire.len() - 1..]).unwrap(),
        [ConnectorOutput::Welcomed(welcome(&["Drain"]))]
    );
    assert!(c.is_established());
    assert_eq!(c.peer_capabilities(), ["Drain"]);
}

#[test]
fn hello_is_sent_once() {
    let mut c = started(&[]);
    assert!(matches!(c.start(), Err(ControlError::State { .. })));
}

#[test]
fn refused() {
    let mut c = started(&[]);
    let refused = Control::Refused(Refused {
        reason: "not granted".into(),
    });
    // Whatever follows the Refused in the same read does not count.
    let wire = [bytes(&refused), bytes(&refused)].concat();
    assert_eq!(
        c.handle_bytes(&wire).unwrap(),
        [ConnectorOutput::Refused("not granted".into())]
    );
    assert!(!c.is_established());
    assert!(matches!(
        c.handle_bytes(&bytes(&Control::Welcome(welcome(&[])))),
        Err(ControlError::Closed)
    ));
    assert_eq!(c.handle_end().unwrap(), []);
}

#[test]
fn welcome_before_hello_is_an_error() {
    let mut c = ConnectorControl::new(hello(&[]));
    let err = c
        .handle_bytes(&bytes(&Control::Welcome(welcome(&[]))))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected Welcome control message before Hello"
    );
    assert!(matches!(c.start(), Err(ControlError::State { .. })));
}

#[test]
fn out_of_place_base_messages_are_errors() {
    // A Hello from the edge, at any point.
    let mut c = started(&[]);
    assert!(matches!(
        c.handle_bytes(&bytes(&Control::Hello(hello(&[])))),
        Err(ControlError::Unexpected {
            kind: "Hello",
            when: "before Welcome"
        })
    ));
    // A second Welcome, or a late Refused.
    for late in [
        Control::Welcome(welcome(&[])),
        Control::Refused(Refused { reason: "r".into() }),
    ] {
        let mut c = established(&[], &[]);
        assert!(
            matches!(
                c.handle_bytes(&bytes(&late)),
                Err(ControlError::Unexpected {
                    when: "after Welcome",
                    ..
                })
            ),
            "{late:?}"
        );
        assert!(matches!(
            c.handle_bytes(&unknown_frame()),
            Err(ControlError::Closed)
        ));
    }
}

#[test]
fn unknown_types_are_ignored_in_every_state() {
    let ignored = [
        ConnectorOutput::Ignored("Drain".into()),
        ConnectorOutput::Ignored("Ping".into()),
    ];
    let mut c = ConnectorControl::new(hello(&[]));
    assert_eq!(c.handle_bytes(&unknown_frame()).unwrap(), ignored);
    c.start().unwrap();
    assert_eq!(c.handle_bytes(&unknown_frame()).unwrap(), ignored);
    c.handle_bytes(&bytes(&Control::Welcome(welcome(&[]))))
        .unwrap();
    assert_eq!(c.handle_bytes(&unknown_frame()).unwrap(), ignored);
    assert!(c.is_established());
}

#[test]
fn optional_messages_flow_only_where_announced() {
    let probe = Control::Probe { note: "n".into() };
    // Received: handed out only if we announced it.
    let mut c = established(&["Probe"], &[]);
    assert_eq!(
        c.handle_bytes(&bytes(&probe)).unwrap(),
        [ConnectorOutput::Message(probe.clone())]
    );
    let mut c = established(&[], &["Probe"]);
    assert!(matches!(
        c.handle_bytes(&bytes(&probe)),
        Err(ControlError::NotAnnounced("Probe"))
    ));
    // Sent: only if the edge announced it.
    let mut c = established(&[], &["Probe"]);
    assert_eq!(
        c.send(probe.clone()).unwrap(),
        [ConnectorOutput::Send(probe.clone())]
    );
    let mut c = established(&["Probe"], &["Drain"]);
    assert!(matches!(
        c.send(probe.clone()),
        Err(ControlError::PeerDidNotAnnounce("Probe"))
    ));
    assert!(c.is_established(), "a refused call changes nothing");
    // Not before Welcome, and never a base message.
    let mut c = started(&["Probe"]);
    assert!(matches!(
        c.send(probe.clone()),
        Err(ControlError::State { .. })
    ));
    let mut c = established(&[], &[]);
    assert!(matches!(
        c.send(Control::Hello(hello(&[]))),
        Err(ControlError::State { .. })
    ));
    // An optional message before Welcome: the edge cannot know yet what we take.
    let mut c = started(&["Probe"]);
    assert!(matches!(
        c.handle_bytes(&bytes(&probe)),
        Err(ControlError::Unexpected { .. })
    ));
}

#[test]
fn garbage_and_oversized_frames_are_fatal() {
    let mut c = started(&[]);
    assert!(matches!(
        c.handle_bytes(&[0, 0, 0, 2, 0xc1, 0xc1]),
        Err(ControlError::Frame(_))
    ));
    assert!(matches!(
        c.handle_bytes(&bytes(&Control::Welcome(welcome(&[])))),
        Err(ControlError::Closed)
    ));
    let mut c = established(&[], &[]);
    assert!(matches!(
        c.handle_bytes(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes()),
        Err(ControlError::Frame(FrameError::TooLarge { .. }))
    ));
}

#[test]
fn the_end_of_the_stream() {
    let mut c = started(&[]);
    assert!(matches!(
        c.handle_end(),
        Err(ControlError::Ended("before Welcome"))
    ));
    let mut c = established(&[], &[]);
    assert_eq!(c.handle_end().unwrap(), []);
    assert!(c.is_established());
    let mut c = established(&[], &[]);
    c.handle_bytes(&[0, 0]).unwrap();
    assert!(matches!(
        c.handle_end(),
        Err(ControlError::Frame(FrameError::Truncated))
    ));
}

/// Both machines wired to each other, as the shells do over a stream: what one sends, the
/// other receives, whatever the capabilities on each side.
#[test]
fn the_two_machines_talk() {
    for (edge_caps, connector_caps) in [
        (vec![], vec![]),
        (vec!["Probe".to_owned()], vec![]),
        (vec![], vec!["Probe".to_owned()]),
    ] {
        let mut edge = EdgeControl::new(edge_caps.clone());
        let mut c = ConnectorControl::new(Hello {
            capabilities: connector_caps.clone(),
            ..hello(&[])
        });
        let wire = |out: Vec<ConnectorOutput>| -> Vec<u8> {
            out.into_iter()
                .flat_map(|o| match o {
                    ConnectorOutput::Send(m) => bytes(&m),
                    _ => vec![],
                })
                .collect()
        };
        let to_edge = wire(c.start().unwrap());
        let judged = edge.handle_bytes(&to_edge).unwrap();
        let [EdgeOutput::Hello(h)] = judged.as_slice() else {
            panic!("{judged:?}")
        };
        assert_eq!(h.capabilities, connector_caps);
        let answer: Vec<u8> = edge
            .accept("edge-1".into(), welcome(&[]).limits, 2000)
            .unwrap()
            .into_iter()
            .flat_map(|o| match o {
                EdgeOutput::Send(m) => bytes(&m),
                _ => vec![],
            })
            .collect();
        let out = c.handle_bytes(&answer).unwrap();
        let [ConnectorOutput::Welcomed(w)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(w.capabilities, edge_caps);
        assert!(edge.is_established() && c.is_established());

        let probe = Control::Probe { note: "n".into() };
        match (c.send(probe.clone()), edge_caps.is_empty()) {
            (Ok(out), false) => assert_eq!(
                edge.handle_bytes(&wire(out)).unwrap(),
                [EdgeOutput::Message(probe.clone())]
            ),
            (Err(ControlError::PeerDidNotAnnounce(_)), true) => {}
            other => panic!("{other:?}"),
        }
        match (edge.send(probe.clone()), connector_caps.is_empty()) {
            (Ok(_), false) | (Err(ControlError::PeerDidNotAnnounce(_)), true) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn stats_go_only_to_an_edge_that_announced_them() {
    let stats = Control::Stats(crate::control::Stats {
        in_flight: 2,
        ..Default::default()
    });
    let mut c = established(&[], &["Stats"]);
    assert_eq!(
        c.send(stats.clone()).unwrap(),
        [ConnectorOutput::Send(stats.clone())]
    );
    // An older edge (no "Stats" in its Welcome) is sent none; the tunnel carries on.
    let mut c = established(&[], &["Time"]);
    assert!(matches!(
        c.send(stats),
        Err(ControlError::PeerDidNotAnnounce("Stats"))
    ));
    assert!(c.is_established());
}
