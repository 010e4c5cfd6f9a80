//! Who a request comes from: the principal and its groups. Contains no credential.

use serde::Serialize;

pub use underpass_audit::AuthMethod;

/// Longest subject, group or API key name accepted into a principal.
pub(super) const MAX_NAME_LEN: usize = 256;

/// Who a request comes from. Contains no credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// `client:<name>`, `apikey:<name>`, `jwt:<sub>` or `anonymous`.
    pub principal: String,
    /// `group:<g>` for each group of a JWT caller (empty otherwise).
    pub groups: Vec<String>,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// OAuth scopes granted to a JWT caller (empty otherwise).
    pub scopes: Vec<String>,
}

impl Identity {
    /// The principal `anonymous`.
    pub fn anonymous() -> Self {
        Identity {
            principal: "anonymous".to_owned(),
            groups: Vec::new(),
            method: AuthMethod::Anonymous,
            scopes: Vec::new(),
        }
    }

    /// Every name policy rules may match for this caller: the principal, then its groups.
    pub fn principals(&self) -> Vec<String> {
        let mut all = Vec::with_capacity(1 + self.groups.len());
        all.push(self.principal.clone());
        all.extend(self.groups.iter().cloned());
        all
    }
}

// ---------------------------------------------------------------------------------------------
// The authenticator
// ---------------------------------------------------------------------------------------------
