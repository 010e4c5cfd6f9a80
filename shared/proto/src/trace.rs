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

/// A request's place in a W3C trace: the trace, the span that called (absent when this hop
/// starts the trace) and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub parent_id: Option<[u8; 8]>,
    pub flags: u8,
}

impl TraceContext {
    /// The context a well-formed `traceparent` carries (see [`parse`]).
    pub fn from_traceparent(value: &[u8]) -> Option<TraceContext> {
        let (trace, parent, flags) = parse(value)?;
        Some(TraceContext {
            trace_id: decode_hex(trace)?,
            parent_id: Some(decode_hex(parent)?),
            flags: decode_hex::<1>(flags)?[0],
        })
    }

    /// The trace `trace_id` (32 hex digits, not all zero) with no known parent, sampled.
    pub fn of_trace_id(trace_id: &str) -> Option<TraceContext> {
        let trace_id: [u8; 16] = decode_hex(trace_id)?;
        (trace_id != [0; 16]).then_some(TraceContext {
            trace_id,
            parent_id: None,
            flags: 0x01,
        })
    }

    /// A new trace, sampled, from 128 random bits (all zeros is invalid, so never zero).
    pub fn start(random: u128) -> TraceContext {
        TraceContext {
            trace_id: random.max(1).to_be_bytes(),
            parent_id: None,
            flags: 0x01,
        }
    }

    /// Whether the caller asked for this trace to be recorded (flag `sampled`).
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// The trace id as in headers and logs: 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The `traceparent` that makes `span_id` the parent of the next hop.
    pub fn traceparent(&self, span_id: [u8; 8]) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &span_id);
        s.push('-');
        push_hex(&mut s, &[self.flags]);
        s
    }
}

/// Lowercase hex of `bytes`. Made for every request (trace ids in audit records and logs),
/// so without the formatting machinery: one allocation of the exact size.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    push_hex(&mut s, bytes);
    s
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if s.len() != 2 * N {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
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

    #[test]
    fn a_context_reads_and_writes_the_header() {
        let ctx = TraceContext::from_traceparent(CLIENT).expect("valid");
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_id, Some(0x00f0_67aa_0ba9_02b7u64.to_be_bytes()));
        assert!(!ctx.sampled());
        assert_eq!(
            ctx.traceparent([0, 0, 0, 0, 0, 0, 0x0a, 0xbc]),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-00"
        );
        assert!(TraceContext::from_traceparent(b"00-xyz-00f067aa0ba902b7-01").is_none());
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(
            TraceContext::start(u128::MAX).traceparent([0xff; 8]).len(),
            55
        );
        let known = TraceContext::of_trace_id("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid");
        assert_eq!(known.trace_id, ctx.trace_id);
        assert!(known.sampled() && known.parent_id.is_none());
        assert!(TraceContext::of_trace_id(&"0".repeat(32)).is_none());
        assert!(TraceContext::of_trace_id("4bf9").is_none());
        let fresh = TraceContext::start(0);
        assert!(fresh.sampled() && fresh.parent_id.is_none());
        assert!(
            parse(fresh.traceparent([1; 8]).as_bytes()).is_some(),
            "never all zeros"
        );
    }
}
