//! Which live tunnels new exchanges may go to: not a draining one while another is left
//! ([`fresh_first`]); and by transport: a connector that has both a QUIC
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

/// `candidates` without the draining ones, unless all are draining (a draining connector
/// still serves; it only asked for nothing new while another can take it).
pub fn fresh_first<T>(candidates: Vec<T>, draining: impl Fn(&T) -> bool) -> Vec<T> {
    if candidates.iter().all(&draining) {
        return candidates;
    }
    candidates.into_iter().filter(|c| !draining(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::{fresh_first, preferred};

    #[test]
    fn draining_tunnels_get_new_exchanges_only_when_nothing_else_is_left() {
        let draining = |t: &(&str, bool)| t.1;
        assert_eq!(
            fresh_first(vec![("dc1", true), ("dc2", false)], draining),
            vec![("dc2", false)]
        );
        assert_eq!(
            fresh_first(vec![("dc1", true), ("dc1", true)], draining),
            vec![("dc1", true), ("dc1", true)]
        );
        assert!(fresh_first(Vec::<(&str, bool)>::new(), draining).is_empty());
    }

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
