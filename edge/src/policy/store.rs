//! The policy in force: loaded at start, swapped whole when the file changes or on SIGHUP
//! ([`crate::reload`]). Requests in flight keep the policy they started with, sessions are
//! untouched, and a broken file keeps the previous policy.

use std::path::PathBuf;
use std::sync::Arc;

use crate::policy::{Policy, PolicyError};
use crate::reload::{follow_file, Reloadable};

/// The policy of `[policy] file`, or with `None` the development-only allow-all policy.
pub fn load_store(path: Option<&PathBuf>) -> Result<Reloadable<Policy>, PolicyError> {
    let policy = match path {
        Some(p) => Policy::load(p)?,
        None => Policy::allow_all(),
    };
    Ok(Reloadable::new(policy))
}

/// Reloads `store` from `path` whenever the file changes and on SIGHUP, for as long as the
/// edge runs.
pub async fn watch_store(store: Arc<Reloadable<Policy>>, path: PathBuf) {
    follow_file(store, path, Policy::load, |path, result| match result {
        Ok(p) => {
            tracing::info!(path = %path.display(), rules = p.rule_count(), "policy reloaded")
        }
        Err(e) => tracing::error!("policy not reloaded, keeping the previous one: {e}"),
    })
    .await
}
