//! What a result says about caching it (2026-07-28 `ttlMs` and `cacheScope`,
//! `basic/utilities/caching.mdx`), and which requests and results may never be cached.

use std::time::Duration;

use serde_json::Value;

/// Who may be served a cached result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Anyone: the result holds nothing specific to the caller.
    Public,
    /// The same authorization context only.
    Private,
}

/// A result's caching hints, as a cache must read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directives {
    /// How long the result stays fresh: absent or negative means zero (not cacheable).
    pub ttl: Duration,
    pub scope: CacheScope,
}

/// The hints of `result`. An absent `ttlMs` (a legacy backend) or a negative one is zero; an
/// absent or unknown `cacheScope` is private, the safe reading.
pub fn directives(result: &Value) -> Directives {
    let ttl_ms = result.get("ttlMs").and_then(Value::as_f64).unwrap_or(0.0);
    let ttl = if ttl_ms.is_finite() && ttl_ms > 0.0 {
        // At most a day: a hint is not a promise, and a list changes.
        Duration::from_millis(ttl_ms.min(86_400_000.0) as u64)
    } else {
        Duration::ZERO
    };
    let scope = match result.get("cacheScope").and_then(Value::as_str) {
        Some("public") => CacheScope::Public,
        _ => CacheScope::Private,
    };
    Directives { ttl, scope }
}

/// Whether a request's result may be cached at all: never one carrying `inputResponses` or
/// `requestState` (a retried multi round-trip request: its result depends on inputs outside
/// any cache key).
pub fn request_may_be_cached(params: Option<&Value>) -> bool {
    params.is_none_or(|p| p.get("inputResponses").is_none() && p.get("requestState").is_none())
}

/// Whether a result may be cached: never an interim `input_required` one.
pub fn result_may_be_cached(result: &Value) -> bool {
    !asks_for_input(result)
}

/// Whether a result is an interim `input_required` one (the request is to be sent again with
/// the client's answers).
pub fn asks_for_input(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hints_are_read_as_the_specification_says() {
        let d = directives(&json!({"ttlMs": 1500, "cacheScope": "public"}));
        assert_eq!(d.ttl, Duration::from_millis(1500));
        assert_eq!(d.scope, CacheScope::Public);
        for r in [
            json!({}),
            json!({"ttlMs": -5}),
            json!({"ttlMs": "100"}),
            json!({"ttlMs": 0, "cacheScope": "shared"}),
        ] {
            let d = directives(&r);
            assert_eq!(d.ttl, Duration::ZERO, "{r}");
            assert_eq!(d.scope, CacheScope::Private, "{r}");
        }
        assert_eq!(
            directives(&json!({"ttlMs": 1e300})).ttl,
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn multi_round_trip_requests_and_interim_results_are_never_cached() {
        assert!(request_may_be_cached(None));
        assert!(request_may_be_cached(Some(&json!({"cursor": "x"}))));
        assert!(!request_may_be_cached(Some(&json!({"inputResponses": {}}))));
        assert!(!request_may_be_cached(Some(&json!({"requestState": "s"}))));
        assert!(result_may_be_cached(&json!({"resultType": "complete"})));
        assert!(result_may_be_cached(&json!({"tools": []})));
        assert!(!result_may_be_cached(
            &json!({"resultType": "input_required"})
        ));
    }
}
