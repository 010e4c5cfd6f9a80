//! What the federated endpoint keeps between requests: the era each backend speaks, the
//! legacy sessions the edge holds at backends (one per service and caller), and its caches.
//! A leaf: `App` holds it; the modules that use it import `App`, never the other way round.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_mcp::federation::caching::Directives;
use underpass_mcp::federation::names::NameTable;

use crate::config::FederationConfig;
use crate::federation::cache::{Lookup, ResponseCache};
use crate::federation::fanout::Fanout;
use crate::federation::pending::PendingAsks;
use crate::federation::subscribed::Subscribed;

/// How long a service's era is believed before it is probed again.
const ERA_FOR: Duration = Duration::from_secs(300);

/// What a backend says of itself: `server/discover`, or a legacy backend's `initialize`.
#[derive(Debug, Clone)]
pub struct Described {
    pub modern: bool,
    pub capabilities: Value,
    pub instructions: Option<String>,
    pub server_info: Value,
}

impl Described {
    pub fn of(result: &Value, modern: bool) -> Described {
        let server_info = if modern {
            result.pointer("/_meta/io.modelcontextprotocol~1serverInfo")
        } else {
            result.get("serverInfo")
        };
        Described {
            modern,
            capabilities: result
                .get("capabilities")
                .filter(|c| c.is_object())
                .cloned()
                .unwrap_or_else(|| json!({})),
            instructions: result
                .get("instructions")
                .and_then(Value::as_str)
                .map(str::to_owned),
            server_info: server_info.cloned().unwrap_or(Value::Null),
        }
    }

    /// About the bytes it holds, for the cache's budget.
    pub fn size(&self) -> usize {
        let text = |v: &Value| v.to_string().len();
        text(&self.capabilities)
            + text(&self.server_info)
            + self.instructions.as_ref().map_or(0, String::len)
    }
}

#[derive(Clone)]
pub struct Pooled {
    pub connector: String,
    pub backend_id: Option<String>,
    pub version: String,
    pub described: Arc<Described>,
    pub last_used: Instant,
    /// Who opened it: the session is ended on their behalf.
    pub identity: Option<crate::auth::Identity>,
    /// The client capabilities it declared at the backend (`Caller::asks`).
    pub asks: Value,
}

/// How many locks serialize the opening of legacy sessions (by a hash of service and caller).
const OPENING_STRIPES: usize = 256;

/// The eras learned and the legacy sessions held, for every service. Sessions go by service
/// and pool key (`Caller::pool_key`: the principal, and what its client may be asked), named
/// `principal` below.
pub struct Upstreams {
    eras: Mutex<HashMap<String, (bool, Instant)>>,
    pools: Mutex<HashMap<(String, String), Pooled>>,
    /// Held while a legacy session is opened, so that concurrent first requests of one caller
    /// open one session, not one each (the others would be left open at the backend).
    opening: Vec<tokio::sync::Mutex<()>>,
    next_id: AtomicU64,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams {
            eras: Mutex::default(),
            pools: Mutex::default(),
            opening: (0..OPENING_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            next_id: AtomicU64::new(0),
        }
    }
}

impl Upstreams {
    pub fn era(&self, service: &str) -> Option<bool> {
        let eras = self.eras.lock().ok()?;
        eras.get(service)
            .filter(|(_, at)| at.elapsed() < ERA_FOR)
            .map(|(modern, _)| *modern)
    }

    pub fn learn_era(&self, service: &str, modern: bool) {
        if let Ok(mut eras) = self.eras.lock() {
            eras.insert(service.to_owned(), (modern, Instant::now()));
        }
    }

    /// The lock to hold while opening the legacy session of `(service, principal)`.
    pub async fn opening(&self, service: &str, principal: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (service, principal).hash(&mut h);
        let stripe = (h.finish() % OPENING_STRIPES as u64) as usize;
        self.opening[stripe].lock().await
    }

    pub fn pooled(&self, service: &str, principal: &str) -> Option<Pooled> {
        let mut pools = self.pools.lock().ok()?;
        let p = pools.get_mut(&(service.to_owned(), principal.to_owned()))?;
        p.last_used = Instant::now();
        Some(p.clone())
    }

    /// Forgets the pooled session of `(service, principal)` (its backend lost it, or its
    /// connector went away).
    pub fn drop_session(&self, service: &str, principal: &str) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.remove(&(service.to_owned(), principal.to_owned()));
        }
    }

    /// A fresh JSON-RPC id for a request the edge originates.
    pub fn id(&self) -> Value {
        Value::from(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Pools the session of `(service, principal)`.
    pub fn keep_session(&self, service: &str, principal: &str, pooled: Pooled) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.insert((service.to_owned(), principal.to_owned()), pooled);
        }
    }

    /// Takes out the sessions unused for `idle`: the caller ends them at their backends.
    pub fn take_idle(&self, idle: Duration) -> Vec<(String, String, Pooled)> {
        let Ok(mut pools) = self.pools.lock() else {
            return Vec::new();
        };
        let doomed: Vec<(String, String)> = pools
            .iter()
            .filter(|(_, p)| p.last_used.elapsed() >= idle)
            .map(|(k, _)| k.clone())
            .collect();
        doomed
            .into_iter()
            .filter_map(|k| pools.remove(&k).map(|p| (k.0, k.1, p)))
            .collect()
    }
}

/// One service's whole list (every page read, within bounds), kept ready to serve: each item
/// federated and serialized once when read (`lists::prepare`), so that a request only picks,
/// renames and concatenates (`lists::federate`), never parses or clones JSON trees.
pub struct Listing {
    /// The items that may be handed out (bad names and URIs are left out when read).
    pub items: Vec<Item>,
    /// Federated names both ways (tools and prompts; empty for resources).
    pub names: NameTable,
}

/// One listed tool, prompt, resource or template, split where a caller's view may change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The backend's name or URI: what the policy filter and routing see.
    pub original: String,
    /// Its federated name (`{prefix}__{name}`) or URI (`underpass://{prefix}/{uri}`).
    pub federated: String,
    /// The backend's `description`, as JSON text (a view may replace it).
    pub description: Option<String>,
    /// Every other member, as JSON text without the braces (empty when none).
    pub rest: String,
}

impl Item {
    /// Bytes held (for the cache's budget).
    pub fn size(&self) -> usize {
        self.original.len()
            + self.federated.len()
            + self.description.as_ref().map_or(0, String::len)
            + self.rest.len()
            + 64
    }
}

/// A shortened name: the kind of item (`tool`, `prompt`), the backend's name, the federated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ShortName {
    pub kind: &'static str,
    pub original: String,
    pub federated: String,
}

/// The names cut to 64 characters, as learned from the lists read (the admin API's
/// `/api/federation/names`): by service, the services whose tools or prompts were read at
/// least once. Bounded by the configured services and `max_items_per_service`: each read
/// replaces what its service and kind held.
#[derive(Default)]
pub struct Shortened(Mutex<BTreeMap<String, Vec<ShortName>>>);

impl Shortened {
    /// Records what a read of `service`'s `kind` list found; returns the mappings not known
    /// before (to be logged once, not at every read).
    pub fn learn(
        &self,
        service: &str,
        kind: &'static str,
        found: Vec<ShortName>,
    ) -> Vec<ShortName> {
        let Ok(mut known) = self.0.lock() else {
            return found;
        };
        let names = known.entry(service.to_owned()).or_default();
        let new: Vec<ShortName> = found
            .iter()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        names.retain(|n| n.kind != kind);
        names.extend(found);
        names.sort();
        new
    }

    /// Every service whose lists were read, with its shortened names (maybe none).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<ShortName>> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Counts of the federated endpoint's cache and of the services left out of its answers.
#[derive(Default)]
pub struct FederationStats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Services left out of a federated answer, by (service, reason).
    pub omitted: Mutex<HashMap<(String, &'static str), u64>>,
}

impl FederationStats {
    pub fn omitted(&self, service: &str, reason: &'static str) {
        if let Ok(mut m) = self.omitted.lock() {
            // Keys are configured services and a fixed set of reasons: bounded.
            *m.entry((service.to_owned(), reason)).or_default() += 1;
        }
    }

    pub fn hit(&self, hit: bool) {
        let counter = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the federated endpoint keeps.
pub struct Federation {
    pub upstreams: Upstreams,
    /// Whole lists of services, by service, method and authorization context.
    pub lists: Mutex<ResponseCache<Listing>>,
    /// `server/discover` of modern services.
    pub described: Mutex<ResponseCache<Described>>,
    /// `resources/read` results.
    pub reads: Mutex<ResponseCache<Value>>,
    pub stats: FederationStats,
    /// Sessions their clients ended (DELETE): refused from then on.
    pub ended: SessionNotes<()>,
    /// The log level each 2025-11-25 session asked for (`logging/setLevel`).
    pub log_levels: SessionNotes<String>,
    /// Names cut to 64 characters, by service.
    pub shortened: Shortened,
    /// The event streams of the legacy sessions the edge holds, by service and pool key
    /// (`Caller::pool_key`), each shared by that caller's change streams.
    pub event_streams: Fanout,
    /// What 2025-11-25 sessions subscribed to at 2026-07-28-only services.
    pub subscribed: Subscribed,
    /// The input requests relayed to 2025-11-25 clients, waiting for their answers.
    pub asks: PendingAsks,
}

/// How many sessions a [`SessionNotes`] remembers; past that the oldest are forgotten (an
/// ended sealed id then opens again, as it would on another edge: the seal, not this list, is
/// the guard).
const NOTES_KEPT: usize = 65_536;

/// What the edge remembers of the legacy sessions it sealed (which hold no state of their
/// own): keyed by a keyed hash of the session id, bounded, oldest forgotten first.
pub struct SessionNotes<V> {
    hasher: std::hash::RandomState,
    notes: Mutex<(HashMap<u64, V>, std::collections::VecDeque<u64>)>,
}

impl<V> Default for SessionNotes<V> {
    fn default() -> Self {
        SessionNotes {
            hasher: std::hash::RandomState::new(),
            notes: Mutex::new((HashMap::new(), std::collections::VecDeque::new())),
        }
    }
}

impl<V: Clone> SessionNotes<V> {
    fn key(&self, id: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(id)
    }

    pub fn set(&self, id: &str, value: V) {
        let key = self.key(id);
        if let Ok(mut guard) = self.notes.lock() {
            let (map, order) = &mut *guard;
            if map.insert(key, value).is_none() {
                order.push_back(key);
            }
            while order.len() > NOTES_KEPT {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<V> {
        let key = self.key(id);
        self.notes.lock().ok()?.0.get(&key).cloned()
    }
}

/// Where a backend result sits in one of the caches: its service, method, the parameter that
/// changes it (a URI; empty for a whole list) and the caller's authorization context
/// (`upstream::context`).
pub struct CacheKey<'a> {
    pub service: &'a str,
    pub method: &'a str,
    pub param: &'a str,
    pub context: &'a str,
}

impl Federation {
    /// The fresh entry of `cache` at `key` the caller may be served, counted as a hit or a miss.
    pub fn lookup<V>(&self, cache: &Mutex<ResponseCache<V>>, key: &CacheKey<'_>) -> Option<Arc<V>> {
        let found = cache
            .lock()
            .map(|mut c| {
                c.get(
                    key.service,
                    key.method,
                    key.param,
                    key.context,
                    Instant::now(),
                )
            })
            .unwrap_or(Lookup::Miss);
        let hit = match found {
            Lookup::Hit(value) => Some(value),
            Lookup::Miss => None,
        };
        self.stats.hit(hit.is_some());
        hit
    }

    /// Keeps `value` (`bytes` large) in `cache` at `key` as the backend's hints say.
    pub fn keep<V>(
        cache: &Mutex<ResponseCache<V>>,
        key: &CacheKey<'_>,
        hints: Directives,
        value: Arc<V>,
        bytes: usize,
    ) {
        if let Ok(mut c) = cache.lock() {
            c.put(
                key.service,
                key.method,
                key.param,
                key.context,
                hints.scope,
                value,
                bytes,
                hints.ttl,
                Instant::now(),
            );
        }
    }

    /// Entries and bytes held by its caches.
    pub fn cache_size(&self) -> (usize, usize) {
        let mut size = (0, 0);
        if let Ok(c) = self.lists.lock() {
            size = (size.0 + c.len(), size.1 + c.bytes());
        }
        if let Ok(c) = self.described.lock() {
            size = (size.0 + c.len(), size.1 + c.bytes());
        }
        if let Ok(c) = self.reads.lock() {
            size = (size.0 + c.len(), size.1 + c.bytes());
        }
        size
    }

    pub fn new(config: &FederationConfig) -> Federation {
        // One byte budget, split: lists and reads hold the bulk.
        let bytes = config.cache_bytes;
        let entries = config.cache_entries;
        Federation {
            upstreams: Upstreams::default(),
            lists: Mutex::new(ResponseCache::new(entries, bytes / 2)),
            described: Mutex::new(ResponseCache::new(entries, bytes / 16)),
            reads: Mutex::new(ResponseCache::new(entries, bytes / 2 - bytes / 16)),
            stats: FederationStats::default(),
            ended: SessionNotes::default(),
            log_levels: SessionNotes::default(),
            shortened: Shortened::default(),
            event_streams: Fanout::default(),
            subscribed: Subscribed::default(),
            asks: PendingAsks::default(),
        }
    }
}

#[cfg(test)]
mod tests;
