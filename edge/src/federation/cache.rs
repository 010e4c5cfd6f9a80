//! The edge's cache of backend results (lists, `server/discover`, `resources/read`), without
//! I/O: time is an argument. Bounded in entries and bytes; the least recently used entry goes
//! first. Keyed by service, method and the parameter that changes the result (a cursor, a
//! URI), and, for a `private` result, the caller's authorization context: a private entry is
//! never served to another context, a public one to anyone (the specification's
//! `cacheScope`). What a caller may see is decided after the cache, on every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use underpass_mcp::federation::caching::CacheScope;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    service: String,
    method: String,
    param: String,
    /// `None`: public; else the authorization context it was fetched for.
    context: Option<String>,
}

struct Entry<V> {
    value: Arc<V>,
    bytes: usize,
    expires: Instant,
    used: u64,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup<V> {
    Hit(Arc<V>),
    Miss,
}

/// A bounded cache of values of type `V` (see the module documentation).
pub struct ResponseCache<V> {
    entries: HashMap<Key, Entry<V>>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    tick: u64,
}

impl<V> ResponseCache<V> {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        ResponseCache {
            entries: HashMap::new(),
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
            tick: 0,
        }
    }

    /// The fresh entry for `(service, method, param)` that `context` may be served: the
    /// public one, else the one fetched for `context`. Expired entries found are dropped.
    pub fn get(
        &mut self,
        service: &str,
        method: &str,
        param: &str,
        context: &str,
        now: Instant,
    ) -> Lookup<V> {
        for ctx in [None, Some(context)] {
            let key = Key {
                service: service.to_owned(),
                method: method.to_owned(),
                param: param.to_owned(),
                context: ctx.map(str::to_owned),
            };
            let fresh = match self.entries.get(&key) {
                None => continue,
                Some(e) => e.expires > now,
            };
            if !fresh {
                self.remove(&key);
                continue;
            }
            self.tick += 1;
            if let Some(e) = self.entries.get_mut(&key) {
                e.used = self.tick;
                return Lookup::Hit(e.value.clone());
            }
        }
        Lookup::Miss
    }

    /// Keeps `value` (`bytes` large) for `ttl` under `scope`. A zero TTL keeps nothing, nor
    /// does a value larger than a quarter of the byte budget (it would push out everything).
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        service: &str,
        method: &str,
        param: &str,
        context: &str,
        scope: CacheScope,
        value: Arc<V>,
        bytes: usize,
        ttl: Duration,
        now: Instant,
    ) {
        if ttl.is_zero() || bytes > self.max_bytes / 4 {
            return;
        }
        let key = Key {
            service: service.to_owned(),
            method: method.to_owned(),
            param: param.to_owned(),
            context: (scope == CacheScope::Private).then(|| context.to_owned()),
        };
        self.remove(&key);
        while self.entries.len() >= self.max_entries || self.bytes + bytes > self.max_bytes {
            if !self.evict_one(now) {
                break;
            }
        }
        self.tick += 1;
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                value,
                bytes,
                expires: now + ttl,
                used: self.tick,
            },
        );
    }

    /// Drops every entry of `service` (a `list_changed` or `resources/updated` from it), or only
    /// those of `method` when given.
    pub fn invalidate(&mut self, service: &str, method: Option<&str>) -> usize {
        let doomed: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| k.service == service && method.is_none_or(|m| k.method == m))
            .cloned()
            .collect();
        for k in &doomed {
            self.remove(k);
        }
        doomed.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= e.bytes;
        }
    }

    /// Drops an expired entry if there is one, else the least recently used; false when empty.
    fn evict_one(&mut self, now: Instant) -> bool {
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| (e.expires > now, e.used))
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                self.remove(&k);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn put(
        c: &mut ResponseCache<u32>,
        param: &str,
        ctx: &str,
        scope: CacheScope,
        v: u32,
        now: Instant,
    ) {
        c.put(
            "svc",
            "tools/list",
            param,
            ctx,
            scope,
            Arc::new(v),
            100,
            TTL,
            now,
        );
    }

    fn get(c: &mut ResponseCache<u32>, param: &str, ctx: &str, now: Instant) -> Option<u32> {
        match c.get("svc", "tools/list", param, ctx, now) {
            Lookup::Hit(v) => Some(*v),
            Lookup::Miss => None,
        }
    }

    #[test]
    fn private_entries_stay_with_their_context_public_ones_are_shared() {
        let now = Instant::now();
        let mut c = ResponseCache::new(16, 1 << 20);
        put(&mut c, "", "alice", CacheScope::Private, 1, now);
        assert_eq!(get(&mut c, "", "alice", now), Some(1));
        assert_eq!(get(&mut c, "", "bob", now), None, "never across contexts");
        put(&mut c, "p2", "alice", CacheScope::Public, 2, now);
        assert_eq!(get(&mut c, "p2", "bob", now), Some(2));
        assert_eq!(
            get(&mut c, "p3", "alice", now),
            None,
            "params are part of the key"
        );
    }

    #[test]
    fn entries_expire_and_zero_ttl_keeps_nothing() {
        let now = Instant::now();
        let mut c = ResponseCache::new(16, 1 << 20);
        put(&mut c, "", "a", CacheScope::Public, 1, now);
        assert_eq!(
            get(&mut c, "", "a", now + TTL - Duration::from_millis(1)),
            Some(1)
        );
        assert_eq!(get(&mut c, "", "a", now + TTL), None);
        assert!(c.is_empty(), "an expired entry found is dropped");
        c.put(
            "svc",
            "m",
            "",
            "a",
            CacheScope::Public,
            Arc::new(1),
            1,
            Duration::ZERO,
            now,
        );
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_in_entries_and_bytes_least_recently_used_first() {
        let now = Instant::now();
        let mut c = ResponseCache::new(3, 1 << 20);
        for (i, p) in ["a", "b", "c"].iter().enumerate() {
            put(&mut c, p, "x", CacheScope::Public, i as u32, now);
        }
        assert_eq!(get(&mut c, "a", "x", now), Some(0)); // a is now the most recent
        put(&mut c, "d", "x", CacheScope::Public, 3, now);
        assert_eq!(c.len(), 3);
        assert_eq!(
            get(&mut c, "b", "x", now),
            None,
            "b was least recently used"
        );
        assert_eq!(get(&mut c, "a", "x", now), Some(0));

        let mut c = ResponseCache::new(1000, 1000);
        for i in 0..100u32 {
            c.put(
                "s",
                "m",
                &i.to_string(),
                "x",
                CacheScope::Public,
                Arc::new(i),
                100,
                TTL,
                now,
            );
            assert!(c.bytes() <= 1000);
        }
        assert_eq!(c.len(), 10);
        // Larger than a quarter of the budget: not kept at all.
        c.put(
            "s",
            "m",
            "big",
            "x",
            CacheScope::Public,
            Arc::new(0),
            251,
            TTL,
            now,
        );
        assert!(matches!(c.get("s", "m", "big", "x", now), Lookup::Miss));
    }

    #[test]
    fn invalidation_drops_a_service_or_one_method() {
        let now = Instant::now();
        let mut c = ResponseCache::new(16, 1 << 20);
        put(&mut c, "", "a", CacheScope::Public, 1, now);
        c.put(
            "svc",
            "prompts/list",
            "",
            "a",
            CacheScope::Public,
            Arc::new(2),
            1,
            TTL,
            now,
        );
        c.put(
            "other",
            "tools/list",
            "",
            "a",
            CacheScope::Public,
            Arc::new(3),
            1,
            TTL,
            now,
        );
        assert_eq!(c.invalidate("svc", Some("tools/list")), 1);
        assert_eq!(c.len(), 2);
        assert_eq!(c.invalidate("svc", None), 1);
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 1);
    }
}
