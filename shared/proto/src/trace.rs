//! W3C Trace Context (`traceparent`, `tracestate`) as the request crosses the tunnel: the
//! edge keeps the client's trace id (or starts one: `RequestHead::trace_id`), and the hop to
//! the backend continues that trace with a span id of its own. Plain functions, no I/O.

/// The header names (lowercase, as on the wire).
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The fields of a well-formed version-00 `traceparent`: trace id, parent id, flags (all
/// lowercase hex). `None` for anything else, including all-zero ids.
pub fn parse(value: &[u8]) -> Option<(&str, &str, &str)> {
    let value = std::str::from_utf8(value).ok()?;
    let mut parts = value.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    (parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2))
    .then_some((trace, parent, flags))
}

/// The `traceparent` the backend gets: trace `trace_id`, parent `span_id` (the hop's own
/// span), and the flags of `incoming` (the client's header) when it belongs to the same
/// trace, else sampled (`01`). Also says whether the client's `tracestate` goes along (only
/// with its own, valid, `traceparent`).
pub fn continued(trace_id: &str, incoming: Option<&[u8]>, span_id: u64) -> (String, bool) {
    let span_id = span_id.max(1); // all zeros is invalid
    let same_trace = incoming
        .and_then(parse)
        .filter(|(trace, _, _)| *trace == trace_id);
    let flags = same_trace.map_or("01", |(_, _, flags)| flags);
    (
        format!("00-{trace_id}-{span_id:016x}-{flags}"),
        same_trace.is_some(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

    #[test]
    fn a_clients_trace_is_continued_with_a_new_parent_and_its_flags() {
        let (tp, keep_state) = continued("4bf92f3577b34da6a3ce929d0e0e4736", Some(CLIENT), 0xabc);
        assert_eq!(
            tp,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-00"
        );
        assert!(keep_state);
        assert!(parse(tp.as_bytes()).is_some());
    }

    #[test]
    fn without_a_valid_client_header_a_new_sampled_trace_starts() {
        let fresh = "0af7651916cd43dd8448eb211c80319c";
        for bad in [
            None,
            Some(&b"garbage"[..]),
            Some(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"),
            Some(CLIENT), // another trace than the request's
        ] {
            let (tp, keep_state) = continued(fresh, bad, 0);
            assert_eq!(tp, format!("00-{fresh}-0000000000000001-01"), "{bad:?}");
            assert!(!keep_state, "{bad:?}");
        }
    }
}
