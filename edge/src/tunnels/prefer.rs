//! Which live tunnels new exchanges may go to, by transport: a connector that has both a QUIC
//! and a TCP tunnel to this edge has just moved back to QUIC (its re-probe found UDP open
//! again), and its TCP tunnel is draining: its exchanges in flight finish there, new ones go to
//! QUIC. A connector with only a TCP tunnel keeps getting its share. Pure: unit-tested below.

use std::collections::HashSet;

/// `candidates` without the TCP tunnels of connectors that also have a QUIC tunnel among
/// them; `key` gives a candidate's connector name and transport (`"quic"`, `"tcp"`).
pub fn preferred<T>(candidates: Vec<T>, key: impl Fn(&T) -> (&str, &'static str)) -> Vec<T> {
    let on_quic: HashSet<String> = candidates
        .iter()
        .map(&key)
        .filter(|(_, transport)| *transport == "quic")
        .map(|(connector, _)| connector.to_owned())
        .collect();
    if on_quic.is_empty() {
        return candidates;
    }
    candidates
        .into_iter()
        .filter(|c| {
            let (connector, transport) = key(c);
            transport != "tcp" || !on_quic.contains(connector)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::preferred;

    fn pick(tunnels: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        preferred(tunnels.to_vec(), |t| (t.0, t.1))
    }

    #[test]
    fn a_connector_back_on_quic_gets_no_new_exchanges_over_tcp() {
        assert_eq!(
            pick(&[("dc1", "tcp"), ("dc1", "quic")]),
            vec![("dc1", "quic")]
        );
    }

    #[test]
    fn a_connector_only_on_tcp_keeps_its_share() {
        assert_eq!(
            pick(&[("dc1", "tcp"), ("dc2", "quic")]),
            vec![("dc1", "tcp"), ("dc2", "quic")]
        );
        assert_eq!(pick(&[("dc1", "tcp")]), vec![("dc1", "tcp")]);
        assert!(pick(&[]).is_empty());
    }
}
