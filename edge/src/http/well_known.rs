//! RFC 9728 protected resource metadata at `/.well-known/oauth-protected-resource[/mcp/…]`,
//! and the URL of it that `WWW-Authenticate` challenges name.

use http::header::HeaderValue;
use http::{Response, StatusCode};
use underpass_mcp::jsonrpc::code;

use crate::app::App;
use crate::auth::PROTECTED_RESOURCE_WELL_KNOWN;
use crate::http::body::{full_body, Body};
use crate::http::host::check_host;
use crate::http::respond::error_response;
use crate::http::router::{route, Route};

/// The URL of the RFC 9728 metadata for `path`, from `[auth] resource`, else from the
/// authority the request addressed (port included), which the caller has checked with
/// [`check_host`]: the edge never echoes a host it does not serve.
pub fn resource_metadata_url(app: &App, authority: &str, path: &str) -> String {
    if let Some(url) = app.security.auth.resource_metadata_url(path) {
        return url;
    }
    let scheme = if app.config.clients.insecure_plaintext {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{authority}{PROTECTED_RESOURCE_WELL_KNOWN}{path}")
}

/// RFC 9728 protected resource metadata, for `/.well-known/oauth-protected-resource` and its
/// per-service form `/.well-known/oauth-protected-resource/mcp/{service}`.
pub fn protected_resource_metadata(
    app: &App,
    parts: &http::request::Parts,
    rest: &str,
) -> Response<Body> {
    // Host only, no Origin check: browser-based clients fetch this document cross-origin,
    // and it holds nothing a rebinding attack could steal.
    let authority = match check_host(&app.config.clients, parts) {
        Ok(a) => a,
        Err(refusal) => return *refusal,
    };
    let service = match route(rest) {
        Route::Service(s) if app.config.has_service(s) => Some(s),
        Route::Federated => None,
        _ if rest.is_empty() => None,
        _ => {
            return error_response(
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "no such protected resource",
            )
        }
    };
    let path = service
        .map(|s| format!("/mcp/{s}"))
        .unwrap_or_else(|| "/mcp".into());
    let metadata_url = resource_metadata_url(app, &authority, &path);
    let resource = metadata_url.replacen(PROTECTED_RESOURCE_WELL_KNOWN, "", 1);
    let body = app.security.auth.protected_resource_metadata(&resource);
    let mut resp = Response::new(full_body(body.to_string()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
