//! RFC 9728 protected resource metadata: the document, and the URLs it lives at.

use serde_json::{json, Map, Value};

use crate::auth::config::JwtConfig;

/// Path prefix of RFC 9728 protected resource metadata documents.
pub const PROTECTED_RESOURCE_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The RFC 9728 protected resource metadata for the resource at `resource_url` (e.g.
/// `https://edge.example.com/mcp/everything`).
///
/// `authorization_servers` is present when JWTs are configured (the MCP spec requires at
/// least one for OAuth discovery); `scopes_supported` when required scopes are configured.
pub fn document(resource_url: &str, jwt: Option<&JwtConfig>, required_scopes: &[String]) -> Value {
    let mut doc = Map::new();
    doc.insert("resource".to_owned(), json!(resource_url));
    if let Some(jwt) = jwt {
        doc.insert(
            "authorization_servers".to_owned(),
            json!(jwt.advertised_servers()),
        );
    }
    if !required_scopes.is_empty() {
        doc.insert("scopes_supported".to_owned(), json!(required_scopes));
    }
    doc.insert("bearer_methods_supported".to_owned(), json!(["header"]));
    doc.insert("resource_name".to_owned(), json!("Underpass"));
    Value::Object(doc)
}

/// `base` + `mcp_path` (`base` without trailing slash, `mcp_path` starting with `/`).
pub fn resource_url(base: &str, mcp_path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        mcp_path.trim_start_matches('/')
    )
}

/// RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
pub fn resource_metadata_url(base: &str, mcp_path: &str) -> String {
    let path = mcp_path.trim_start_matches('/');
    let base = base.trim_end_matches('/');
    if path.is_empty() {
        format!("{base}{PROTECTED_RESOURCE_WELL_KNOWN}")
    } else {
        format!("{base}{PROTECTED_RESOURCE_WELL_KNOWN}/{path}")
    }
}
