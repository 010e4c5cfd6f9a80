//! Caps on exchanges in flight per service: in total (`max_concurrent`) and per principal
//! (`max_concurrent_per_principal`). An exchange over a cap is refused at once (never queued),
//! so one caller's thousand long tool calls cannot take every backend connection (and file
//! descriptor) of the connector, and the others' calls still get through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::config::Concurrency;

/// `Retry-After` of a refused exchange: calls end all the time, so soon.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Why an exchange was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The service has `limit` exchanges in flight (HTTP 503).
    #[error(
        "service {service:?} is at its limit of {limit} requests in flight: retry in a moment \
         (`max_concurrent` of this service in connector.toml)"
    )]
    Service { service: String, limit: usize },
    /// This principal has its share in flight (HTTP 429).
    #[error(
        "you already have {limit} requests in flight to service {service:?}, the most one \
         caller may have: retry once one has finished (`max_concurrent_per_principal` of this \
         service in connector.toml)"
    )]
    Principal { service: String, limit: usize },
}

impl Refused {
    pub fn status(&self) -> u16 {
        match self {
            Refused::Service { .. } => 503,
            Refused::Principal { .. } => 429,
        }
    }

    pub fn rpc_code(&self) -> i64 {
        use underpass_mcp::jsonrpc::code;
        match self {
            Refused::Service { .. } => code::UNAVAILABLE,
            Refused::Principal { .. } => code::RATE_LIMITED,
        }
    }
}

/// The exchanges in flight to one service.
#[derive(Debug)]
pub struct Limiter {
    service: String,
    caps: Concurrency,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    per: HashMap<String, usize>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Limiter {
    pub fn new(service: &str, caps: Concurrency) -> Limiter {
        Limiter {
            service: service.to_owned(),
            caps,
            state: Default::default(),
        }
    }

    /// A place for one exchange of `principal`, held until the permit is dropped.
    pub fn admit(&self, principal: &str) -> Result<Permit, Refused> {
        let mut state = lock(&self.state);
        let held = state.per.get(principal).copied().unwrap_or(0);
        if held >= self.caps.per_principal {
            return Err(Refused::Principal {
                service: self.service.clone(),
                limit: self.caps.per_principal,
            });
        }
        if state.total >= self.caps.max {
            return Err(Refused::Service {
                service: self.service.clone(),
                limit: self.caps.max,
            });
        }
        state.total += 1;
        state.per.insert(principal.to_owned(), held + 1);
        Ok(Permit {
            state: self.state.clone(),
            principal: principal.to_owned(),
        })
    }

    /// Exchanges in flight, in total and of `principal`.
    pub fn in_flight(&self, principal: &str) -> (usize, usize) {
        let state = lock(&self.state);
        (state.total, state.per.get(principal).copied().unwrap_or(0))
    }
}

/// One exchange's place under the caps.
#[derive(Debug)]
pub struct Permit {
    state: Arc<Mutex<State>>,
    principal: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max: usize, per_principal: usize) -> Limiter {
        Limiter::new("svc", Concurrency { max, per_principal })
    }

    #[test]
    fn one_principal_cannot_take_every_place() {
        let l = limiter(3, 2);
        let a1 = l.admit("alice").unwrap();
        let _a2 = l.admit("alice").unwrap();
        assert_eq!(l.admit("alice").unwrap_err().status(), 429);
        let _b1 = l.admit("bob").unwrap();
        let e = l.admit("carol").unwrap_err();
        assert_eq!(e.status(), 503, "{e}");
        assert!(e.to_string().contains("max_concurrent"), "{e}");
        drop(a1);
        assert_eq!(l.in_flight("alice"), (2, 1));
        let _c1 = l.admit("carol").unwrap();
    }

    #[test]
    fn permits_are_returned() {
        let l = limiter(2, 2);
        for _ in 0..10 {
            let _a = l.admit("alice").unwrap();
            let _b = l.admit("alice").unwrap();
        }
        assert_eq!(l.in_flight("alice"), (0, 0));
        assert!(lock(&l.state).per.is_empty(), "no entry left behind");
    }
}
