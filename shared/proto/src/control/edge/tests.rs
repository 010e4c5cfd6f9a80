use super::*;
use crate::frame::{self, FrameError, MAX_FRAME_LEN};

fn hello(protocol: u32, capabilities: &[&str]) -> Hello {
    Hello {
        protocol,
        connector: "dc1".into(),
        services: vec!["everything".into()],
        build: "test".into(),
        capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn bytes(msg: &Control) -> Vec<u8> {
    frame::encode(msg).unwrap()
}

fn limits() -> Limits {
    Limits {
        max_request_body: 1 << 20,
        max_concurrent_exchanges: 16_384,
    }
}

fn welcome() -> Control {
    Control::Welcome(Welcome {
        edge: "e".into(),
        limits: limits(),
        heartbeat_ms: 2000,
        capabilities: vec![],
    })
}

/// An edge that announces `ours`, which has judged and welcomed a connector announcing
/// `theirs`.
fn established(ours: &[&str], theirs: &[&str]) -> EdgeControl {
    let mut edge = EdgeControl::new(ours.iter().map(|c| (*c).to_owned()).collect());
    let out = edge
        .handle_bytes(&bytes(&Control::Hello(hello(PROTOCOL_VERSION, theirs))))
        .unwrap();
    assert_eq!(out, [EdgeOutput::Hello(hello(PROTOCOL_VERSION, theirs))]);
    edge.accept("e".into(), limits(), 2000).unwrap();
    assert!(edge.is_established());
    edge
}

fn unknown_frame() -> Vec<u8> {
    #[derive(serde::Serialize)]
    enum Newer {
        Drain { deadline_ms: u64 },
    }
    frame::encode(&Newer::Drain { deadline_ms: 1 }).unwrap()
}

#[test]
fn hello_is_handed_out_then_welcomed() {
    let mut edge = EdgeControl::new(vec!["Probe".into()]);
    assert!(!edge.is_established());
    let hello = hello(PROTOCOL_VERSION, &["Probe", "Drain"]);
    let wire = bytes(&Control::Hello(hello.clone()));
    // Split anywhere: nothing happens before the frame is whole.
    assert_eq!(edge.handle_bytes(&wire[..5]).unwrap(), []);
    assert_eq!(
        edge.handle_bytes(&wire[5..]).unwrap(),
        [EdgeOutput::Hello(hello)]
    );
    assert_eq!(edge.peer_capabilities(), ["Probe", "Drain"]);
    assert!(!edge.is_established(), "judged first");
    let out = edge.accept("e".into(), limits(), 2000).unwrap();
    assert_eq!(
        out,
        [EdgeOutput::Send(Control::Welcome(Welcome {
            edge: "e".into(),
            limits: limits(),
            heartbeat_ms: 2000,
            capabilities: vec!["Probe".into()],
        }))]
    );
    assert!(edge.is_established());
}

#[test]
fn a_refused_hello_sends_refused_and_closes() {
    let mut edge = EdgeControl::new(vec![]);
    edge.handle_bytes(&bytes(&Control::Hello(hello(PROTOCOL_VERSION, &[]))))
        .unwrap();
    let out = edge.refuse("not granted".into()).unwrap();
    assert_eq!(
        out,
        [
            EdgeOutput::Send(Control::Refused(Refused {
                reason: "not granted".into()
            })),
            EdgeOutput::Refused("not granted".into()),
        ]
    );
    assert!(!edge.is_established());
    assert!(matches!(
        edge.handle_bytes(&unknown_frame()),
        Err(ControlError::Closed)
    ));
    assert!(matches!(
        edge.accept("e".into(), limits(), 1),
        Err(ControlError::State { .. })
    ));
}

#[test]
fn another_protocol_version_is_refused() {
    let mut edge = EdgeControl::new(vec![]);
    let out = edge
        .handle_bytes(&bytes(&Control::Hello(hello(99, &[]))))
        .unwrap();
    let reason = "tunnel protocol 99 is not supported; this edge speaks 1";
    assert_eq!(
        out,
        [
            EdgeOutput::Send(Control::Refused(Refused {
                reason: reason.into()
            })),
            EdgeOutput::Refused(reason.into()),
        ]
    );
}

#[test]
fn welcome_before_hello_is_refused() {
    for first in [
        welcome(),
        Control::Refused(Refused { reason: "x".into() }),
        Control::Probe { note: "n".into() },
    ] {
        let mut edge = EdgeControl::new(vec!["Probe".into()]);
        let out = edge.handle_bytes(&bytes(&first)).unwrap();
        let reason = "expected Hello as the first control frame";
        assert_eq!(
            out,
            [
                EdgeOutput::Send(Control::Refused(Refused {
                    reason: reason.into()
                })),
                EdgeOutput::Refused(reason.into()),
            ],
            "{first:?}"
        );
    }
}

#[test]
fn what_follows_a_refusing_frame_is_not_read() {
    let mut edge = EdgeControl::new(vec![]);
    let wire = [
        bytes(&welcome()),
        bytes(&Control::Hello(hello(PROTOCOL_VERSION, &[]))),
    ]
    .concat();
    let out = edge.handle_bytes(&wire).unwrap();
    assert!(
        matches!(out.last(), Some(EdgeOutput::Refused(_))),
        "{out:?}"
    );
}

#[test]
fn hello_twice_is_an_error() {
    // While judging.
    let mut edge = EdgeControl::new(vec![]);
    let hello = bytes(&Control::Hello(hello(PROTOCOL_VERSION, &[])));
    let err = edge.handle_bytes(&[hello.clone(), hello.clone()].concat());
    assert!(
        matches!(
            err,
            Err(ControlError::Unexpected {
                kind: "Hello",
                when: "before Welcome"
            })
        ),
        "{err:?}"
    );
    assert!(matches!(
        edge.handle_bytes(&hello),
        Err(ControlError::Closed)
    ));
    // After Welcome.
    let mut edge = established(&[], &[]);
    let err = edge.handle_bytes(&hello).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected Hello control message after Welcome"
    );
    assert!(matches!(
        edge.handle_bytes(&unknown_frame()),
        Err(ControlError::Closed)
    ));
}

#[test]
fn base_messages_from_the_connector_after_welcome_are_errors() {
    for msg in [welcome(), Control::Refused(Refused { reason: "r".into() })] {
        let mut edge = established(&[], &[]);
        assert!(
            matches!(
                edge.handle_bytes(&bytes(&msg)),
                Err(ControlError::Unexpected { .. })
            ),
            "{msg:?}"
        );
    }
}

#[test]
fn unknown_types_are_ignored_in_every_state() {
    // Before Hello.
    let mut edge = EdgeControl::new(vec![]);
    assert_eq!(
        edge.handle_bytes(&unknown_frame()).unwrap(),
        [EdgeOutput::Ignored("Drain".into())]
    );
    // Then the handshake goes on, even with an unknown message in the same read.
    let wire = [
        bytes(&Control::Hello(hello(PROTOCOL_VERSION, &[]))),
        unknown_frame(),
    ]
    .concat();
    assert_eq!(
        edge.handle_bytes(&wire).unwrap(),
        [
            EdgeOutput::Hello(hello(PROTOCOL_VERSION, &[])),
            EdgeOutput::Ignored("Drain".into())
        ]
    );
    edge.accept("e".into(), limits(), 1).unwrap();
    // After Welcome.
    assert_eq!(
        edge.handle_bytes(&unknown_frame()).unwrap(),
        [EdgeOutput::Ignored("Drain".into())]
    );
    assert!(edge.is_established());
}

#[test]
fn optional_messages_flow_only_where_announced() {
    let probe = Control::Probe { note: "n".into() };
    // The connector announced Probe: the edge may send it.
    let mut edge = established(&[], &["Probe"]);
    assert_eq!(
        edge.send(probe.clone()).unwrap(),
        [EdgeOutput::Send(probe.clone())]
    );
    // It did not: never sent, and the machine carries on.
    let mut edge = established(&["Probe"], &["Drain"]);
    assert!(matches!(
        edge.send(probe.clone()),
        Err(ControlError::PeerDidNotAnnounce("Probe"))
    ));
    assert!(edge.is_established());
    // The edge announced Probe: received, it is handed out.
    assert_eq!(
        edge.handle_bytes(&bytes(&probe)).unwrap(),
        [EdgeOutput::Message(probe.clone())]
    );
    // The edge did not announce it: the connector broke the rule.
    let mut edge = established(&[], &["Probe"]);
    assert!(matches!(
        edge.handle_bytes(&bytes(&probe)),
        Err(ControlError::NotAnnounced("Probe"))
    ));
}

#[test]
fn sending_is_for_optional_messages_after_welcome() {
    let mut edge = EdgeControl::new(vec![]);
    assert!(matches!(
        edge.send(Control::Probe { note: "n".into() }),
        Err(ControlError::State { .. })
    ));
    let mut edge = established(&[], &[]);
    assert!(matches!(
        edge.send(welcome()),
        Err(ControlError::State { .. })
    ));
    assert!(matches!(
        edge.refuse("late".into()),
        Err(ControlError::State { .. })
    ));
    assert!(matches!(
        edge.accept("e".into(), limits(), 1),
        Err(ControlError::State { .. })
    ));
    assert!(edge.is_established(), "misuse changes nothing");
}

#[test]
fn verdicts_need_a_hello() {
    let mut edge = EdgeControl::new(vec![]);
    assert!(matches!(
        edge.accept("e".into(), limits(), 1),
        Err(ControlError::State { .. })
    ));
    assert!(matches!(
        edge.refuse("r".into()),
        Err(ControlError::State { .. })
    ));
}

#[test]
fn garbage_and_oversized_frames_are_fatal() {
    let mut edge = EdgeControl::new(vec![]);
    let mut garbage = 3u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xc1, 0xc1, 0xc1]);
    assert!(matches!(
        edge.handle_bytes(&garbage),
        Err(ControlError::Frame(FrameError::Decode(_)))
    ));
    assert!(matches!(
        edge.handle_bytes(&bytes(&Control::Hello(hello(PROTOCOL_VERSION, &[])))),
        Err(ControlError::Closed)
    ));

    // Refused from the length prefix alone, before the bytes arrive.
    let mut edge = established(&[], &[]);
    let prefix = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
    assert!(matches!(
        edge.handle_bytes(&prefix),
        Err(ControlError::Frame(FrameError::TooLarge { .. }))
    ));
    assert!(!edge.is_established());
}

#[test]
fn the_end_of_the_stream() {
    // Before Hello: the connector gave up.
    let mut edge = EdgeControl::new(vec![]);
    assert!(matches!(
        edge.handle_end(),
        Err(ControlError::Ended("before Hello"))
    ));
    // Inside a frame: cut short.
    let mut edge = EdgeControl::new(vec![]);
    let hello = bytes(&Control::Hello(hello(PROTOCOL_VERSION, &[])));
    edge.handle_bytes(&hello[..hello.len() - 1]).unwrap();
    assert!(matches!(
        edge.handle_end(),
        Err(ControlError::Frame(FrameError::Truncated))
    ));
    // After Hello: the verdict can still be sent; after Welcome: the tunnel lives on.
    let mut edge = EdgeControl::new(vec![]);
    edge.handle_bytes(&hello).unwrap();
    assert_eq!(edge.handle_end().unwrap(), []);
    edge.accept("e".into(), limits(), 1).unwrap();
    assert_eq!(edge.handle_end().unwrap(), []);
    assert!(edge.is_established());
}

fn stats() -> Control {
    Control::Stats(crate::control::Stats {
        services: vec![crate::control::ServiceStats {
            service: "everything".into(),
            ok: 3,
            bytes_in: 10,
            ..Default::default()
        }],
        stdio_processes: 1,
        connects: vec![crate::control::EdgeConnects {
            edge: "edge:7443".into(),
            connects: 2,
        }],
        ..Default::default()
    })
}

#[test]
fn stats_reach_an_edge_that_announced_them_and_break_one_that_did_not() {
    let mut edge = established(crate::control::CAPABILITIES, &["Stats"]);
    assert_eq!(
        edge.handle_bytes(&bytes(&stats())).unwrap(),
        [EdgeOutput::Message(stats())]
    );
    // A connector that did not announce them is sent none.
    let mut edge = established(&["Stats"], &[]);
    assert!(matches!(
        edge.send(stats()),
        Err(ControlError::PeerDidNotAnnounce("Stats"))
    ));
    let mut edge = established(&[], &["Stats"]);
    assert!(matches!(
        edge.handle_bytes(&bytes(&stats())),
        Err(ControlError::NotAnnounced("Stats"))
    ));
}
