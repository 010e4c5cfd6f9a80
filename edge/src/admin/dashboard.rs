//! The dashboard at `GET /`: one static page, its script and its style sheet, compiled into
//! the binary (no build chain). The script polls the admin API every two seconds and draws
//! everything client-side, writing data only through `textContent` and SVG attributes, never
//! as markup. The Content-Security-Policy allows nothing but these same-origin files.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::access::Route;
use super::{respond, Answer};

const HTML: &str = include_str!("dashboard.html");
const JS: &str = include_str!("dashboard.js");
const CSS: &str = include_str!("dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page, script or style sheet `route` names.
pub fn page(route: &Route) -> Answer {
    let (content_type, body) = match route {
        Route::DashboardJs => ("text/javascript; charset=utf-8", JS),
        Route::DashboardCss => ("text/css; charset=utf-8", CSS),
        _ => ("text/html; charset=utf-8", HTML),
    };
    let mut resp = respond(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    );
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
