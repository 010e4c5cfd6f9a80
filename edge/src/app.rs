//! The application state every request handler reads, built once at start by
//! [`crate::run`]: the configuration, what decides who may do what ([`Security`]), the live
//! tunnels, and the edge's own services. A leaf of the request path: it depends on none of it.

use std::sync::Arc;

use underpass_audit::Auditor;

use crate::assertion::AssertionSigner;
use crate::auth::Authenticator;
use crate::bridges::Bridges;
use crate::config::EdgeConfig;
use crate::limiter::RateLimiter;
use crate::limits::Limits;
use crate::policy::Policy;
use crate::reload::Reloadable;
use crate::revocation::Revocations;
use crate::sessions::Sealer;
use crate::tunnels::registry::Registry;

/// Everything a request handler may need. Shared behind an `Arc`; every field is safe to read
/// concurrently.
pub struct App {
    pub config: Arc<EdgeConfig>,
    pub security: Security,
    /// The live tunnels and the legacy sessions pinned to them.
    pub tunnels: Arc<Registry>,
    /// Signs the identity assertions backends receive instead of client credentials.
    pub signer: AssertionSigner,
    /// Seals and opens the legacy session ids clients hold (`[sessions] keys`).
    pub sealer: Sealer,
    /// The audit trail, when `[audit]` is configured.
    pub auditor: Option<Auditor>,
    /// Open 2024-11-05 SSE bridges, by session id.
    pub bridges: Bridges,
    /// Client-side resource limits (connections, bodies, requests in flight).
    pub limits: Limits,
    /// Up once SIGTERM arrived: the edge is draining.
    pub drain: crate::drain::Drain,
    /// Counters and histograms of `/metrics` updated as requests end.
    pub requests: Arc<crate::metrics::RequestMetrics>,
    /// Where the requests' spans go (`[telemetry] otlp_endpoint`; off without one).
    pub tracer: underpass_shared::telemetry::Tracer,
    /// What the admin API shows of finished requests (figures per service, recent denials).
    pub feed: Arc<crate::admin::feed::Feed>,
    /// What the federated endpoint `/mcp` keeps: backend eras, pooled sessions, caches.
    pub federation: Arc<crate::federation::state::Federation>,
}

/// Who is calling and what they may do: authentication, policy, rate limits, revocation.
pub struct Security {
    pub auth: Arc<Authenticator>,
    /// The policy in force, swapped whole on reload.
    pub policy: Arc<Reloadable<Policy>>,
    pub limiter: RateLimiter,
    pub revocations: Arc<Revocations>,
}
