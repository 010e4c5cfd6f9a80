//! The control state machines (`underpass_proto::control`) fed arbitrary bytes in arbitrary
//! pieces: no panic; the outputs do not depend on how the bytes were cut (as long as the shell
//! gives no verdict in between); after an error every later input is refused as `Closed`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use underpass_fuzz::{chunks, mode};
use underpass_proto::control::{
    capabilities, ConnectorControl, ConnectorOutput, ControlError, EdgeControl, EdgeOutput, Hello,
    Limits,
};

fn hello() -> Hello {
    Hello {
        protocol: 1,
        connector: "fuzz".to_owned(),
        services: vec!["everything".to_owned()],
        build: "fuzz".to_owned(),
        capabilities: capabilities(),
    }
}

/// Everything one run said, for comparing runs.
#[derive(Debug, PartialEq)]
enum Said<O> {
    Out(O),
    Error(String),
}

fn edge_run(pieces: &[&[u8]], verdict: Option<bool>, end: bool) -> Vec<Said<EdgeOutput>> {
    let mut edge = EdgeControl::new(capabilities());
    let mut said = Vec::new();
    let mut failed = false;
    for piece in pieces {
        match edge.handle_bytes(piece) {
            Ok(outs) => {
                let hello = outs.iter().any(|o| matches!(o, EdgeOutput::Hello(_)));
                let refused = outs.iter().any(|o| matches!(o, EdgeOutput::Refused(_)));
                said.extend(outs.into_iter().map(Said::Out));
                if refused {
                    // The shell closes the tunnel: nothing more is read.
                    assert!(matches!(edge.handle_bytes(b"x"), Err(ControlError::Closed)));
                    return said;
                }
                if hello {
                    let judged = match verdict {
                        Some(true) => Some(edge.accept(
                            "edge".to_owned(),
                            Limits {
                                max_request_body: 1,
                                max_concurrent_exchanges: 1,
                            },
                            1000,
                        )),
                        Some(false) => Some(edge.refuse("no".to_owned())),
                        None => None,
                    };
                    match judged {
                        Some(Ok(outs)) => said.extend(outs.into_iter().map(Said::Out)),
                        Some(Err(e)) => panic!("a verdict right after Hello was refused: {e}"),
                        None => {}
                    }
                }
            }
            Err(e) => {
                failed = true;
                said.push(Said::Error(e.to_string()));
                break;
            }
        }
    }
    if end {
        if let Err(e) = edge.handle_end() {
            said.push(Said::Error(e.to_string()));
        }
    }
    if failed {
        assert!(matches!(edge.handle_bytes(b"x"), Err(ControlError::Closed)));
    }
    said
}

fn connector_run(pieces: &[&[u8]], end: bool) -> Vec<Said<ConnectorOutput>> {
    let mut connector = ConnectorControl::new(hello());
    let mut said = Vec::new();
    match connector.start() {
        Ok(outs) => said.extend(outs.into_iter().map(Said::Out)),
        Err(e) => panic!("start refused: {e}"),
    }
    let mut failed = false;
    for piece in pieces {
        match connector.handle_bytes(piece) {
            Ok(outs) => {
                let refused = outs
                    .iter()
                    .any(|o| matches!(o, ConnectorOutput::Refused(_)));
                said.extend(outs.into_iter().map(Said::Out));
                if refused {
                    assert!(matches!(
                        connector.handle_bytes(b"x"),
                        Err(ControlError::Closed)
                    ));
                    return said;
                }
            }
            Err(e) => {
                failed = true;
                said.push(Said::Error(e.to_string()));
                break;
            }
        }
    }
    if end {
        if let Err(e) = connector.handle_end() {
            said.push(Said::Error(e.to_string()));
        }
    }
    if failed {
        assert!(matches!(
            connector.handle_bytes(b"x"),
            Err(ControlError::Closed)
        ));
    }
    said
}

/// Runs on the whole input and on pieces agree: the same outputs, or, when both end in the
/// same error, the whole run's outputs are a prefix of the cut one's (`handle_bytes` drops the
/// outputs of a call that ends in an error, and the conversation is over anyway).
fn agree<O: PartialEq + std::fmt::Debug>(whole: &[Said<O>], cut: &[Said<O>]) {
    let error = |s: &[Said<O>]| match s.last() {
        Some(Said::Error(e)) => Some(e.clone()),
        _ => None,
    };
    match (error(whole), error(cut)) {
        (None, None) => assert_eq!(whole, cut, "the outputs depend on how the bytes arrived"),
        (Some(a), Some(b)) => {
            assert_eq!(a, b, "the error depends on how the bytes arrived");
            let w = &whole[..whole.len() - 1];
            let c = &cut[..cut.len() - 1];
            assert!(
                c.starts_with(w),
                "the outputs depend on how the bytes arrived: {whole:?} vs {cut:?}"
            );
        }
        (a, b) => panic!("an error depends on how the bytes arrived: {a:?} vs {b:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let split = usize::from(m & 0x0f).min(rest.len());
    let (sizes, body) = rest.split_at(split);
    let pieces = chunks(body, sizes);
    let end = m & 0x10 != 0;
    if m & 0x20 == 0 {
        let whole = edge_run(&[body], None, end);
        let cut = edge_run(&pieces, None, end);
        agree(&whole, &cut);
        edge_run(&pieces, Some(m & 0x40 != 0), end);
    } else {
        let whole = connector_run(&[body], end);
        let cut = connector_run(&pieces, end);
        agree(&whole, &cut);
    }
});
