//! How new exchanges are spread over the live tunnels serving a service (several connectors,
//! several tunnels each): power of two choices on outstanding exchanges. Two distinct tunnels
//! are drawn at random and the one with fewer exchanges in flight gets the new one (a tie
//! goes to the first drawn). A tunnel whose connector or backend is slow keeps its exchanges
//! longer, so it is drawn and then passed over; no tunnel is ever starved by a stale global
//! view, and there is no herd onto the single least-loaded tunnel.
//!
//! Every exchange holds an [`InFlight`] of its tunnel's [`Load`] from the moment it is sent
//! until its response body has ended (or was dropped): that count is the load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The exchanges in flight on one tunnel.
#[derive(Debug, Default)]
pub struct Load(Arc<AtomicUsize>);

impl Load {
    /// Counts one more exchange until the guard drops.
    pub fn begin(&self) -> InFlight {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlight(self.0.clone())
    }

    /// Exchanges in flight now.
    pub fn outstanding(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// One exchange counted in its tunnel's [`Load`]; uncounted when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Power of two choices: the index of the tunnel to use among candidates whose exchanges in
/// flight are `loads`, drawing with the random number `r`. `None` without candidates; the one
/// candidate when alone; otherwise the less loaded of two distinct ones drawn with `r`.
pub fn choose(loads: &[usize], r: u64) -> Option<usize> {
    let n = loads.len() as u64;
    match n {
        0 => None,
        1 => Some(0),
        _ => {
            let first = r % n;
            let second = (first + 1 + (r / n) % (n - 1)) % n;
            let (first, second) = (first as usize, second as usize);
            Some(if loads[second] < loads[first] {
                second
            } else {
                first
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of draws (xorshift).
    fn draws(count: usize) -> impl Iterator<Item = u64> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..count).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
    }

    fn picks(loads: &[usize], count: usize) -> Vec<usize> {
        let mut per = vec![0; loads.len()];
        for r in draws(count) {
            per[choose(loads, r).expect("a candidate")] += 1;
        }
        per
    }

    #[test]
    fn none_without_candidates_and_the_only_one_when_alone() {
        assert_eq!(choose(&[], 7), None);
        for r in draws(100) {
            assert_eq!(choose(&[1000], r), Some(0));
        }
    }

    #[test]
    fn of_two_the_less_loaded_always_wins() {
        assert_eq!(picks(&[3, 0], 1000), vec![0, 1000]);
        assert_eq!(picks(&[0, 1], 1000), vec![1000, 0]);
        // Equal loads: both get a fair share.
        let even = picks(&[2, 2], 1000);
        assert!(even[0] > 400 && even[1] > 400, "{even:?}");
    }

    #[test]
    fn a_loaded_tunnel_gets_fewer_new_exchanges() {
        // One of four tunnels is busy: it is chosen only when drawn against a busier one,
        // which never happens here; the others share the rest.
        let per = picks(&[9, 0, 0, 0], 3000);
        assert_eq!(per[0], 0, "{per:?}");
        assert!(per[1..].iter().all(|&p| p > 800), "{per:?}");
        // The most loaded of several is never chosen; the least loaded most often.
        let per = picks(&[5, 1, 3, 0], 4000);
        assert_eq!(per[0], 0, "{per:?}");
        assert!(per[3] > per[1] && per[1] > per[2], "{per:?}");
    }

    #[test]
    fn two_distinct_tunnels_are_compared() {
        // If both draws could land on the loaded tunnel it would sometimes be chosen.
        for n in 2..9 {
            let mut loads = vec![0; n];
            loads[n - 1] = 1;
            for r in draws(500) {
                assert_ne!(choose(&loads, r), Some(n - 1), "n = {n}, r = {r}");
            }
        }
    }

    #[test]
    fn the_guard_counts_while_it_lives() {
        let load = Load::default();
        let a = load.begin();
        let b = load.begin();
        assert_eq!(load.outstanding(), 2);
        drop(a);
        assert_eq!(load.outstanding(), 1);
        drop(b);
        assert_eq!(load.outstanding(), 0);
    }
}
