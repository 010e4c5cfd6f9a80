//! Many tunnels per edge: the edge's name is resolved to every address it has (A and AAAA),
//! and each address gets `tunnels_per_edge` [`Dialer`]s, each keeping one tunnel up and
//! reconnecting with its own jittered backoff. The name is resolved again whenever a tunnel
//! ends or a dial fails (at most once a second) and every [`RESOLVE_EVERY`]: an address that
//! appears gets its dialers, one that is gone from a successful answer is retired (its
//! tunnels stay up until they end, and are not dialed again). A failed lookup changes nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::backends::Backends;
use crate::tunnel::{Backoff, Dialer};

/// How often an edge's name is resolved again while nothing happens.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);
/// Least time between two lookups of one name prompted by tunnels ending.
const RESOLVE_AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// Time for the dialers to close their tunnels at shutdown, beyond `drain_grace`.
const CLOSE_MARGIN: Duration = Duration::from_secs(3);

/// The dialers of one configured edge.
pub struct EdgeDialers {
    /// The edge as configured (`host:port`).
    pub edge: String,
    pub server_name: String,
    /// Tunnels per address.
    pub per_address: usize,
    pub connector: String,
    pub services: Vec<String>,
    /// Both carriers' client configs and the configured `transport`.
    pub carriers: crate::carrier::Carriers,
    pub backends: Arc<Backends>,
    /// Certificate renewals waiting for a tunnel to carry them.
    pub renewals: Arc<crate::renew::Renewals>,
    /// The edges' certificates revoked (`revocation_list`).
    pub revocations: Arc<crate::revocation::EdgeRevocations>,
    pub shutdown: watch::Receiver<bool>,
    /// `drain_grace`, for each dialer.
    pub drain_grace: Duration,
    /// Live tunnels per edge, for readiness.
    pub live: Arc<crate::live::LiveTunnels>,
}

/// The dialers of one address.
struct Address {
    retire: watch::Sender<bool>,
    /// Dialers still running (retired ones finish their tunnel first).
    live: usize,
    /// Slots handed out so far, for the log.
    slots: usize,
}

/// What a lookup changes: dialers to start per address, addresses to retire and to revive.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub start: Vec<(SocketAddr, usize)>,
    pub retire: Vec<SocketAddr>,
}

/// The change a successful lookup (`resolved`, not empty) makes, given the dialers running
/// per address (`live`): every resolved address is brought to `per_address` dialers, every
/// other address is retired. Pure, for testing.
pub fn change(
    live: &HashMap<SocketAddr, usize>,
    resolved: &[SocketAddr],
    per_address: usize,
) -> Change {
    let mut c = Change::default();
    for addr in resolved {
        let have = live.get(addr).copied().unwrap_or(0);
        if have < per_address {
            c.start.push((*addr, per_address - have));
        }
    }
    let mut gone: Vec<SocketAddr> = live
        .keys()
        .filter(|a| !resolved.contains(a))
        .copied()
        .collect();
    gone.sort();
    c.retire = gone;
    c
}

impl EdgeDialers {
    /// Keeps the tunnels to this edge up until shutdown.
    pub async fn run(mut self) {
        let resolve_again = Arc::new(Notify::new());
        let mut addresses: HashMap<SocketAddr, Address> = HashMap::new();
        let mut dialers: JoinSet<SocketAddr> = JoinSet::new();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let looked_up = tokio::time::Instant::now();
            let wait = match resolve_all(&self.edge).await {
                Ok(resolved) => {
                    backoff.reset();
                    self.apply(&resolved, &mut addresses, &mut dialers, &resolve_again);
                    RESOLVE_EVERY
                }
                Err(e) => {
                    tracing::warn!(edge = %self.edge, "cannot resolve the edge: {e}");
                    backoff.next_delay()
                }
            };
            let timer = tokio::time::sleep(wait);
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    _ = &mut timer => break,
                    _ = resolve_again.notified() => {
                        tokio::time::sleep_until(looked_up + RESOLVE_AT_MOST_EVERY).await;
                        break;
                    }
                    Some(ended) = dialers.join_next() => {
                        if let Ok(addr) = ended {
                            let done = addresses.get_mut(&addr).is_some_and(|a| {
                                a.live = a.live.saturating_sub(1);
                                a.live == 0 && *a.retire.borrow()
                            });
                            if done {
                                addresses.remove(&addr);
                            }
                        }
                    }
                    _ = self.shutdown.changed() => return self.wind_down(dialers).await,
                }
            }
            if *self.shutdown.borrow() {
                return self.wind_down(dialers).await;
            }
        }
    }

    /// At shutdown: waits while every dialer drains and closes its tunnel (dropping the set
    /// would abort them, leaving their tunnels for the edge to find dead by timeout).
    async fn wind_down(&self, mut dialers: JoinSet<SocketAddr>) {
        let _ = tokio::time::timeout(self.drain_grace + CLOSE_MARGIN, async {
            while dialers.join_next().await.is_some() {}
        })
        .await;
    }

    fn apply(
        &self,
        resolved: &[SocketAddr],
        addresses: &mut HashMap<SocketAddr, Address>,
        dialers: &mut JoinSet<SocketAddr>,
        resolve_again: &Arc<Notify>,
    ) {
        let live: HashMap<SocketAddr, usize> = addresses
            .iter()
            .filter(|(_, a)| !*a.retire.borrow())
            .map(|(addr, a)| (*addr, a.live))
            .collect();
        let change = change(&live, resolved, self.per_address);
        for addr in &change.retire {
            if let Some(a) = addresses.get(addr) {
                tracing::info!(edge = %self.edge, %addr, "the edge's name no longer resolves to this address: not dialing it again");
                let _ = a.retire.send(true);
            }
        }
        for (addr, count) in change.start {
            let a = addresses.entry(addr).or_insert_with(|| Address {
                retire: watch::channel(false).0,
                live: 0,
                slots: 0,
            });
            if *a.retire.borrow() {
                // Back in the answer: its dialers still running dial again when theirs end.
                let _ = a.retire.send(false);
            }
            let count = self.per_address.saturating_sub(a.live).min(count);
            for _ in 0..count {
                a.live += 1;
                a.slots += 1;
                tracing::info!(edge = %self.edge, %addr, slot = a.slots, server_name = %self.server_name, "dialing edge");
                let dialer = Dialer {
                    edge: self.edge.clone(),
                    addr,
                    slot: a.slots,
                    server_name: self.server_name.clone(),
                    connector: self.connector.clone(),
                    services: self.services.clone(),
                    carriers: self.carriers.clone(),
                    backends: self.backends.clone(),
                    renewals: self.renewals.clone(),
                    revocations: self.revocations.clone(),
                    shutdown: self.shutdown.clone(),
                    drain_grace: self.drain_grace,
                    retired: a.retire.subscribe(),
                    resolve_again: resolve_again.clone(),
                    live: self.live.clone(),
                };
                dialers.spawn(async move {
                    dialer.run().await;
                    addr
                });
            }
        }
    }
}

/// Every address `edge` (`host:port`) resolves to, in the resolver's order, without repeats.
async fn resolve_all(edge: &str) -> Result<Vec<SocketAddr>, String> {
    let mut all: Vec<SocketAddr> = Vec::new();
    for addr in tokio::net::lookup_host(edge)
        .await
        .map_err(|e| e.to_string())?
    {
        if !all.contains(&addr) {
            all.push(addr);
        }
    }
    if all.is_empty() {
        return Err("no address".into());
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_resolved_address_gets_its_dialers_and_the_others_are_retired() {
        let v4 = a("127.0.0.1:7844");
        let v6 = a("[::1]:7844");
        let old = a("10.0.0.9:7844");
        // First lookup: two tunnels to each address.
        assert_eq!(
            change(&HashMap::new(), &[v4, v6], 2),
            Change {
                start: vec![(v4, 2), (v6, 2)],
                retire: vec![]
            }
        );
        // One dialer of v4 gone (cannot happen unless retired, but the count is what counts),
        // v6 complete, an address no longer in the answer.
        let live = HashMap::from([(v4, 1), (v6, 2), (old, 2)]);
        assert_eq!(
            change(&live, &[v6, v4], 2),
            Change {
                start: vec![(v4, 1)],
                retire: vec![old]
            }
        );
        // Nothing to do when everything is in place.
        let live = HashMap::from([(v4, 2)]);
        assert_eq!(change(&live, &[v4], 2), Change::default());
    }

    #[tokio::test]
    async fn an_ip_literal_resolves_to_itself() {
        assert_eq!(
            resolve_all("127.0.0.1:7844").await.unwrap(),
            vec![a("127.0.0.1:7844")]
        );
        assert_eq!(
            resolve_all("[::1]:7844").await.unwrap(),
            vec![a("[::1]:7844")]
        );
        assert!(resolve_all("no-port").await.is_err());
    }
}
