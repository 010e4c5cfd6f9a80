//! Wire compatibility with the builds before capabilities, both ways, and decoding of types
//! this build does not know.

use serde::{Deserialize, Serialize};

use super::*;
use crate::frame::{self, FrameError, PROTOCOL_VERSION};

/// The control messages exactly as the builds before capabilities declared them (`frame.rs`
/// up to commit 1def229): the previous edge and connector read and write these.
mod previous {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Control {
        Hello {
            protocol: u32,
            connector: String,
            services: Vec<String>,
            build: String,
        },
        Welcome {
            edge: String,
            limits: Limits,
            heartbeat_ms: u64,
        },
        Refused {
            reason: String,
        },
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Limits {
        pub max_request_body: u64,
        pub max_concurrent_exchanges: u64,
    }
}

fn old_hello() -> previous::Control {
    previous::Control::Hello {
        protocol: PROTOCOL_VERSION,
        connector: "dc1".into(),
        services: vec!["everything".into(), "files".into()],
        build: "underpass-connector 0.1.0".into(),
    }
}

fn old_welcome() -> previous::Control {
    previous::Control::Welcome {
        edge: "edge-1".into(),
        limits: previous::Limits {
            max_request_body: 4 << 20,
            max_concurrent_exchanges: 16_384,
        },
        heartbeat_ms: 2000,
    }
}

fn old_refused() -> previous::Control {
    previous::Control::Refused {
        reason: "connector \"dc1\" is not granted service(s) [\"files\"]".into(),
    }
}

fn hello(capabilities: &[&str]) -> Control {
    Control::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        connector: "dc1".into(),
        services: vec!["everything".into(), "files".into()],
        build: "underpass-connector 0.1.0".into(),
        capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
    })
}

fn welcome(capabilities: &[&str]) -> Control {
    Control::Welcome(Welcome {
        edge: "edge-1".into(),
        limits: Limits {
            max_request_body: 4 << 20,
            max_concurrent_exchanges: 16_384,
        },
        heartbeat_ms: 2000,
        capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
    })
}

fn refused() -> Control {
    Control::Refused(Refused {
        reason: "connector \"dc1\" is not granted service(s) [\"files\"]".into(),
    })
}

fn received(bytes: &[u8]) -> Result<Received, FrameError> {
    let (msg, used) = frame::decode::<Received>(bytes)?.expect("a whole frame");
    assert_eq!(used, bytes.len());
    Ok(msg)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The frame the previous connector sends as its `Hello`, byte for byte.
const OLD_HELLO_FRAME: &str = "0000005b81a548656c6c6f84a870726f746f636f6c01a9636f6e6e6563746f72a3\
    646331a8736572766963657392aa65766572797468696e67a566696c6573a56275696c64b9756e64657270617373\
    2d636f6e6e6563746f7220302e312e30";

#[test]
fn the_previous_encoding_is_pinned() {
    // Guards the copy in `previous` itself: these are the bytes the old build put on the wire.
    assert_eq!(hex(&frame::encode(&old_hello()).unwrap()), OLD_HELLO_FRAME);
}

#[test]
fn old_frames_decode_as_before() {
    for (old, new) in [
        (old_hello(), hello(&[])),
        (old_welcome(), welcome(&[])),
        (old_refused(), refused()),
    ] {
        let bytes = frame::encode(&old).unwrap();
        assert_eq!(received(&bytes).unwrap(), Received::Known(new.clone()));
        // The strict decoding too.
        assert_eq!(frame::decode::<Control>(&bytes).unwrap().unwrap().0, new);
    }
}

#[test]
fn new_frames_are_the_old_bytes_when_nothing_is_announced() {
    for (old, new) in [
        (old_hello(), hello(&[])),
        (old_welcome(), welcome(&[])),
        (old_refused(), refused()),
    ] {
        assert_eq!(
            frame::encode(&new).unwrap(),
            frame::encode(&old).unwrap(),
            "{new:?}"
        );
    }
}

#[test]
fn old_peers_read_new_frames_with_capabilities() {
    // A previous build skips the field it does not know.
    let bytes = frame::encode(&hello(&["Drain", "Renew"])).unwrap();
    assert_eq!(
        frame::decode::<previous::Control>(&bytes)
            .unwrap()
            .unwrap()
            .0,
        old_hello()
    );
    let bytes = frame::encode(&welcome(&["Drain"])).unwrap();
    assert_eq!(
        frame::decode::<previous::Control>(&bytes)
            .unwrap()
            .unwrap()
            .0,
        old_welcome()
    );
    // And the new build reads them back whole.
    assert_eq!(
        received(&bytes).unwrap(),
        Received::Known(welcome(&["Drain"]))
    );
}

/// Message types a newer peer might add: one with fields, one without.
#[derive(Serialize, Deserialize)]
enum Newer {
    Drain {
        deadline_ms: u64,
        edges: Vec<String>,
    },
    Ping,
}

#[test]
fn unknown_types_are_told_from_broken_frames() {
    let drain = frame::encode(&Newer::Drain {
        deadline_ms: 30_000,
        edges: vec!["edge-2".into()],
    })
    .unwrap();
    assert_eq!(received(&drain).unwrap(), Received::Unknown("Drain".into()));
    let ping = frame::encode(&Newer::Ping).unwrap();
    assert_eq!(received(&ping).unwrap(), Received::Unknown("Ping".into()));
    // The previous build cannot read them: why they are sent only to peers that announce them.
    assert!(frame::decode::<previous::Control>(&drain).is_err());
    assert!(frame::decode::<Control>(&drain).is_err());

    // Known types with broken or missing fields, and shapes that are no message, stay errors.
    #[derive(Serialize)]
    enum Broken {
        Hello { protocol: String },
        Welcome,
    }
    #[derive(Serialize)]
    struct TwoTags {
        #[serde(rename = "Hello")]
        a: u8,
        #[serde(rename = "Ping")]
        b: u8,
    }
    for bytes in [
        frame::encode(&Broken::Hello {
            protocol: "one".into(),
        })
        .unwrap(),
        frame::encode(&Broken::Welcome).unwrap(),
        frame::encode(&TwoTags { a: 1, b: 2 }).unwrap(),
        frame::encode(&std::collections::HashMap::<String, u8>::new()).unwrap(),
        frame::encode(&42u32).unwrap(),
        frame::encode(&vec!["Hello"]).unwrap(),
    ] {
        assert!(
            matches!(received(&bytes), Err(FrameError::Decode(_))),
            "{}",
            hex(&bytes)
        );
    }
}

#[test]
fn garbage_never_panics() {
    let seed = frame::encode(&hello(&["Drain"])).unwrap();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5000 {
        let mut b = seed.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = 4 + (next() as usize) % (b.len() - 4);
            b[i] = next() as u8;
        }
        let _ = frame::decode::<Received>(&b);
    }
    // Deep nesting inside an unknown type is bounded by the decoder, not the stack.
    let mut deep = vec![0x81, 0xa4, b'D', b'e', b'e', b'p'];
    deep.extend(std::iter::repeat_n(0x91, 100_000));
    deep.push(0xc0);
    let mut framed = (deep.len() as u32).to_be_bytes().to_vec();
    framed.extend(deep);
    assert!(frame::decode::<Received>(&framed).is_err());
}

#[test]
fn kinds_and_base() {
    assert_eq!(hello(&[]).kind(), "Hello");
    assert_eq!(welcome(&[]).kind(), "Welcome");
    assert_eq!(refused().kind(), "Refused");
    assert!(hello(&[]).is_base() && welcome(&[]).is_base() && refused().is_base());
    let probe = Control::Probe { note: "n".into() };
    assert_eq!(probe.kind(), "Probe");
    assert!(!probe.is_base());
    let draining = Control::Draining(Draining { grace_ms: 30_000 });
    assert_eq!(draining.kind(), "Draining");
    assert!(
        !draining.is_base(),
        "an older peer must never be sent Draining"
    );
    assert!(crate::control::CAPABILITIES.contains(&"Draining"));
    let renew = Control::Renew(Renew {
        id: 7,
        csr_pem: "csr".into(),
    });
    let renewed = Control::Renewed(Renewed {
        id: 7,
        chain_pem: "chain".into(),
        ca_pem: "ca".into(),
    });
    let renew_refused = Control::RenewRefused(RenewRefused {
        id: 7,
        reason: "no".into(),
    });
    let reauth = Control::Reauth(Reauth {
        id: 8,
        chain: vec![vec![0x30, 0x82], vec![0x30]],
        scheme: 0x0403,
        signature: vec![1, 2, 3],
    });
    let reauthed = Control::Reauthed(Reauthed {
        id: 8,
        not_after: 1_800_000_000,
    });
    let reauth_refused = Control::ReauthRefused(ReauthRefused {
        id: 8,
        reason: "no".into(),
    });
    let time = Control::Time(Time { id: 9 });
    let time_is = Control::TimeIs(TimeIs {
        id: 9,
        unix_ms: 1_800_000_000_123,
    });
    let stats = Control::Stats(Stats {
        services: vec![ServiceStats {
            service: "s".into(),
            ok: 1,
            backend_error: 2,
            refused: 3,
            bytes_in: 4,
            bytes_out: 5,
        }],
        stdio_processes: 1,
        bridge_sessions: 1,
        in_flight: 0,
        connects: vec![EdgeConnects {
            edge: "e:1".into(),
            connects: 2,
        }],
    });
    for msg in [
        &renew,
        &renewed,
        &renew_refused,
        &reauth,
        &reauthed,
        &reauth_refused,
        &time,
        &time_is,
        &stats,
    ] {
        assert!(
            !msg.is_base(),
            "an older peer must never be sent {}",
            msg.kind()
        );
        assert!(crate::control::CAPABILITIES.contains(&msg.kind()));
    }
    // Every known kind decodes from what it encodes to.
    for msg in [
        hello(&["Probe"]),
        welcome(&[]),
        refused(),
        draining,
        renew,
        renewed,
        renew_refused,
        reauth,
        reauthed,
        reauth_refused,
        time,
        time_is,
        stats,
        probe,
    ] {
        let bytes = frame::encode(&msg).unwrap();
        assert_eq!(received(&bytes).unwrap(), Received::Known(msg));
    }
    // Every kind above is known, the base ones are `BASE`, and nothing else is.
    assert_eq!(BASE.len() + crate::control::CAPABILITIES.len(), 13);
    assert!(is_known("Probe") && !is_known("Nope"));
}
