//! Enforcement of the policy's rates: token buckets per (principal, service, rule). State,
//! not policy: the policy says which rate applies, the limiter counts. The clock is an
//! argument, so it is tested without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::policy::Rate;

/// Buckets are swept at least this often…
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// …and also whenever the map grows past this many entries (then twice its size after a sweep).
const PRUNE_MIN_LEN: usize = 1024;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    rate: Rate,
}

impl Bucket {
    fn capacity(rate: &Rate) -> f64 {
        f64::from(rate.burst.max(1))
    }

    /// Tokens available at `now` (never more than the capacity).
    fn level(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let refill = elapsed * self.rate.per_second.max(0.0);
        (self.tokens + refill).min(Bucket::capacity(&self.rate))
    }
}

/// A bucket's key: (principal, service, rule).
type BucketKey = (String, String, String);

#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<BucketKey, Bucket>,
    last_prune: Option<Instant>,
    prune_len: usize,
}

/// Token buckets per (principal, service, rule): each rule's rate binds the calls that rule
/// allowed, and calls another rule allowed never draw on (or refill) its bucket. A bucket
/// starts full (`burst` tokens), each counted call takes one, and it refills at `per_second`.
/// Full buckets are forgotten from time to time (a new bucket starts full, so this changes
/// nothing but memory).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<Buckets>,
}

/// A rate limit a request would exceed.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    /// The rule whose bucket is short.
    pub rule: String,
    /// Its rate.
    pub rate: Rate,
    /// How long until the bucket holds enough tokens (`Duration::MAX` if it never will: a
    /// batch needing more calls of one rule than its burst).
    pub retry: Duration,
}

/// Slack for floating-point rounding, so that retrying exactly after the advised delay works.
const EPSILON: f64 = 1e-9;

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    /// Takes one token from the bucket of (`principal`, `service`, `rule`) at time `now`, or
    /// says how long to wait until one is available. See [`RateLimiter::check_all`].
    pub fn check(
        &self,
        principal: &str,
        service: &str,
        rule: &str,
        rate: &Rate,
        now: Instant,
    ) -> Result<(), Duration> {
        self.check_all(principal, service, &[(rule, *rate)], now)
            .map_err(|e| e.retry)
    }

    /// Takes one token per entry of `charges` (a rule and its rate; a rule may appear several
    /// times, e.g. for the calls of a batch) — all of them, or none: if any bucket is short,
    /// nothing is taken and the first short one is returned. A bucket whose rate changed
    /// (policy reload) keeps its level, capped at the new burst. A `burst` of 0 is taken as 1.
    pub fn check_all(
        &self,
        principal: &str,
        service: &str,
        charges: &[(&str, Rate)],
        now: Instant,
    ) -> Result<(), Exceeded> {
        let mut needs: Vec<(&str, Rate, u32)> = Vec::new();
        for (rule, rate) in charges {
            match needs.iter_mut().find(|(r, _, _)| r == rule) {
                Some(n) => n.2 += 1,
                None => needs.push((rule, *rate, 1)),
            }
        }
        if needs.is_empty() {
            return Ok(());
        }
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = &mut *guard;
        maybe_prune(buckets, now);
        let key = |rule: &str| (principal.to_owned(), service.to_owned(), rule.to_owned());
        // First bring every bucket up to date and check it…
        for (rule, rate, n) in &needs {
            let bucket = buckets.map.entry(key(rule)).or_insert_with(|| Bucket {
                tokens: Bucket::capacity(rate),
                updated: now,
                rate: *rate,
            });
            let level = bucket.level(now);
            bucket.rate = *rate;
            bucket.tokens = level.min(Bucket::capacity(rate));
            if now > bucket.updated {
                bucket.updated = now;
            }
            let n = f64::from(*n);
            if bucket.tokens + EPSILON < n {
                let missing = n - bucket.tokens;
                let wait = if rate.per_second > 0.0 && n <= Bucket::capacity(rate) {
                    // Round up to the microsecond so the advised retry is never early.
                    (missing / rate.per_second * 1e6).ceil() / 1e6
                } else {
                    f64::INFINITY
                };
                return Err(Exceeded {
                    rule: (*rule).to_owned(),
                    rate: *rate,
                    retry: Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX),
                });
            }
        }
        // …then take the tokens.
        for (rule, _, n) in &needs {
            if let Some(bucket) = buckets.map.get_mut(&key(rule)) {
                bucket.tokens = (bucket.tokens - f64::from(*n)).max(0.0);
            }
        }
        Ok(())
    }

    /// Forgets every bucket that would be full at `now`.
    pub fn prune(&self, now: Instant) {
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut guard, now);
    }

    /// Number of buckets currently tracked.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Whether no bucket is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn maybe_prune(buckets: &mut Buckets, now: Instant) {
    let last = *buckets.last_prune.get_or_insert(now);
    if now.saturating_duration_since(last) >= PRUNE_INTERVAL
        || buckets.map.len() >= buckets.prune_len.max(PRUNE_MIN_LEN)
    {
        prune(buckets, now);
    }
}

fn prune(buckets: &mut Buckets, now: Instant) {
    buckets
        .map
        .retain(|_, b| b.level(now) + EPSILON < Bucket::capacity(&b.rate));
    buckets.last_prune = Some(now);
    buckets.prune_len = buckets.map.len().saturating_mul(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_trips_and_recovers() {
        let limiter = RateLimiter::new();
        let rate = Rate::parse("3/min").unwrap_or(Rate {
            per_second: 0.0,
            burst: 0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("client:a", "svc", "r", &rate, t0), Ok(()));
        }
        let Err(wait) = limiter.check("client:a", "svc", "r", &rate, t0) else {
            panic!("the 4th request must be refused");
        };
        assert!(
            wait > Duration::from_millis(19_999) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Other principals and services have their own buckets.
        assert_eq!(limiter.check("client:b", "svc", "r", &rate, t0), Ok(()));
        assert_eq!(limiter.check("client:a", "other", "r", &rate, t0), Ok(()));
        // Not yet…
        assert!(limiter
            .check(
                "client:a",
                "svc",
                "r",
                &rate,
                t0 + wait - Duration::from_millis(10)
            )
            .is_err());
        // …but exactly after the advised delay, one request goes through, and then no more.
        let t1 = t0 + wait;
        assert_eq!(limiter.check("client:a", "svc", "r", &rate, t1), Ok(()));
        let Err(again) = limiter.check("client:a", "svc", "r", &rate, t1) else {
            panic!("the bucket should be empty again");
        };
        assert!(again <= Duration::from_secs(20) && again > Duration::from_secs(19));
        // After a long idle period the bucket is full again: burst, then refusal.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.check("client:a", "svc", "r", &rate, t2), Ok(()));
        }
        assert!(limiter.check("client:a", "svc", "r", &rate, t2).is_err());
        // A time going backwards is treated as no time passing.
        assert!(limiter.check("client:a", "svc", "r", &rate, t0).is_err());
    }

    #[test]
    fn each_rule_has_its_own_bucket() {
        // The bypass of issue 10: a 2/min rule interleaved with a 50/s rule used to share one
        // bucket per (principal, service), refilled at whichever rate decided last.
        let limiter = RateLimiter::new();
        let slow = Rate::parse("2/min").unwrap_or(Rate {
            per_second: 0.0,
            burst: 0,
        });
        let fast = Rate::parse("50/s").unwrap_or(slow);
        let t0 = Instant::now();
        let mut slow_ok = 0;
        for i in 0..100u64 {
            let t = t0 + Duration::from_millis(100 * i);
            if limiter.check("client:a", "svc", "slow", &slow, t).is_ok() {
                slow_ok += 1;
            }
            assert_eq!(limiter.check("client:a", "svc", "fast", &fast, t), Ok(()));
        }
        // 10 s: the burst of 2, plus at most one refill at 2/min… none within 10 s.
        assert_eq!(slow_ok, 2);
    }

    #[test]
    fn check_all_takes_every_token_or_none() {
        let limiter = RateLimiter::new();
        let two = Rate {
            per_second: 1.0 / 60.0,
            burst: 2,
        };
        let many = Rate {
            per_second: 1.0,
            burst: 100,
        };
        let t0 = Instant::now();
        // A batch of three calls of a rule with burst 2 can never pass; nothing is taken.
        let e = limiter
            .check_all(
                "p",
                "s",
                &[("a", two), ("b", many), ("a", two), ("a", two)],
                t0,
            )
            .unwrap_err();
        assert_eq!((e.rule.as_str(), e.retry), ("a", Duration::MAX));
        assert_eq!(
            limiter.check_all("p", "s", &[("a", two), ("a", two)], t0),
            Ok(())
        );
        // Now "a" is empty: a batch touching it is refused whole, "b" keeps its tokens.
        let e = limiter
            .check_all("p", "s", &[("b", many), ("a", two)], t0)
            .unwrap_err();
        assert_eq!(e.rule, "a");
        assert!(e.retry > Duration::from_secs(59) && e.retry <= Duration::from_secs(60));
        for _ in 0..100 {
            assert_eq!(limiter.check("p", "s", "b", &many, t0), Ok(()));
        }
        assert!(limiter.check("p", "s", "b", &many, t0).is_err());
        assert_eq!(limiter.check_all("p", "s", &[], t0), Ok(()));
    }

    #[test]
    fn rate_limiter_prunes_full_buckets() {
        let limiter = RateLimiter::new();
        let rate = Rate {
            per_second: 1.0,
            burst: 2,
        };
        let t0 = Instant::now();
        for i in 0..10 {
            let _ = limiter.check(&format!("p{i}"), "s", "r", &rate, t0);
        }
        assert_eq!(limiter.len(), 10);
        limiter.prune(t0);
        assert_eq!(limiter.len(), 10, "half-empty buckets are kept");
        // Refilled after 1 s: forgotten by the next periodic sweep.
        let _ = limiter.check("fresh", "s", "r", &rate, t0 + PRUNE_INTERVAL);
        assert_eq!(limiter.len(), 1);
        assert!(!limiter.is_empty());
        // A degenerate rate never panics.
        let zero = Rate {
            per_second: 0.0,
            burst: 0,
        };
        assert_eq!(limiter.check("z", "s", "r", &zero, t0), Ok(()));
        assert_eq!(limiter.check("z", "s", "r", &zero, t0), Err(Duration::MAX));
    }
}
