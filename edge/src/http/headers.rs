//! Which headers cross the edge, both ways: hop-by-hop headers and credentials stop here,
//! forwarding headers are the edge's own, and the backend's response headers are filtered.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use crate::http::conn::ConnInfo;

/// The legacy session header (`Mcp-Session-Id`).
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Most header fields a request may carry (431 beyond): hyper's own limit on HTTP/1.1,
/// applied to HTTP/2 as well, whose header list is bounded only in bytes.
pub const MAX_HEADER_FIELDS: usize = 100;

fn is_hop_by_hop(name: &HeaderName) -> bool {
    use http::header::*;
    [
        CONNECTION,
        TRANSFER_ENCODING,
        UPGRADE,
        TE,
        TRAILER,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        CONTENT_LENGTH,
        HOST,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Forwarding headers a client could forge to lie to a backend about where a request came
/// from: they stop at the edge, which sets its own (see [`forwarding_headers`]).
const FORWARDING_HEADERS: [&str; 7] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
];

/// The headers a request carries to the backend: the client's forwardable ones, and the
/// forwarding headers as the edge observed the request.
pub fn upstream_headers(
    conn: &ConnInfo,
    parts: &http::request::Parts,
    tls: bool,
) -> Vec<(String, Vec<u8>)> {
    // Room for the forwarding headers too: one allocation for the list.
    let mut headers = Vec::with_capacity(parts.headers.len() + FORWARDING_SET);
    push_forwardable(&mut headers, &parts.headers);
    push_forwarding(&mut headers, conn, parts, tls);
    headers
}

/// How many headers [`forwarding_headers`] sets at most.
const FORWARDING_SET: usize = 4;

/// `X-Forwarded-For` / `-Proto` / `-Host` and `Forwarded` (RFC 7239) from what the edge saw:
/// the peer address of the client's connection, whether it used TLS, and the (already
/// validated) authority it asked for. Whatever the client sent under these names is dropped.
pub fn forwarding_headers(
    conn: &ConnInfo,
    parts: &http::request::Parts,
    tls: bool,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(FORWARDING_SET);
    push_forwarding(&mut out, conn, parts, tls);
    out
}

fn push_forwarding(
    out: &mut Vec<(String, Vec<u8>)>,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    tls: bool,
) {
    use std::fmt::Write as _;
    let proto = if tls { "https" } else { "http" };
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(http::header::HOST)?.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
    // `Forwarded` is written in one buffer: for=…;proto=…;host="…".
    let mut forwarded = String::with_capacity(64);
    if let Some(remote) = conn.peer {
        let ip = remote.ip().to_canonical();
        let _ = match ip {
            std::net::IpAddr::V4(v4) => write!(forwarded, "for={v4};"),
            std::net::IpAddr::V6(v6) => write!(forwarded, "for=\"[{v6}]\";"),
        };
        out.push(("x-forwarded-for".to_owned(), ip.to_string().into_bytes()));
    }
    out.push(("x-forwarded-proto".to_owned(), proto.as_bytes().to_vec()));
    forwarded.push_str("proto=");
    forwarded.push_str(proto);
    if let Some(host) = host {
        let _ = write!(forwarded, ";host=\"{host}\"");
        out.push(("x-forwarded-host".to_owned(), host.as_bytes().to_vec()));
    }
    out.push(("forwarded".to_owned(), forwarded.into_bytes()));
}

/// The headers that may cross the tunnel. Credentials stop here (no token passthrough),
/// clients cannot inject the `x-underpass-*` headers the connector adds for backends, nor
/// forwarding headers ([`FORWARDING_HEADERS`]).
pub fn forwardable_request_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(headers.len());
    push_forwardable(&mut out, headers);
    out
}

fn push_forwardable(out: &mut Vec<(String, Vec<u8>)>, headers: &HeaderMap) {
    let connection_listed: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    out.extend(
        headers
            .iter()
            .filter(|(name, _)| {
                !is_hop_by_hop(name)
                    && *name != http::header::AUTHORIZATION
                    && *name != http::header::COOKIE
                    && !name
                        .as_str()
                        .starts_with(underpass_proto::headers::RESERVED_PREFIX)
                    && !FORWARDING_HEADERS.contains(&name.as_str())
                    && !connection_listed.iter().any(|c| c == name.as_str())
            })
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec())),
    );
}

/// The response headers a backend's answer may carry to the client: hop-by-hop headers and
/// `Set-Cookie` stop here (the edge is the client's origin, not the backend). Returns them
/// and whether the answer is an event stream; an event stream also gets the headers that keep
/// proxies in front of the edge from buffering it.
pub fn response_headers(upstream: Vec<(String, Vec<u8>)>) -> (HeaderMap, bool) {
    let mut h = HeaderMap::new();
    let mut is_sse = false;
    for (name, value) in upstream {
        let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_bytes(&value))
        else {
            continue;
        };
        if is_hop_by_hop(&name) || name == http::header::SET_COOKIE {
            continue;
        }
        if name == http::header::CONTENT_TYPE && value.as_bytes().starts_with(b"text/event-stream")
        {
            is_sse = true;
        }
        h.append(name, value);
    }
    if is_sse {
        // Tell nginx-style proxies in front of us not to buffer the stream.
        let (name, value) = underpass_mcp::sse::NO_BUFFERING_HEADER;
        h.insert(name, HeaderValue::from_static(value));
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    (h, is_sse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    #[test]
    fn credentials_and_hop_headers_stop_at_the_edge() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("cookie", HeaderValue::from_static("sid=1"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-drop-me"),
        );
        h.insert("x-drop-me", HeaderValue::from_static("1"));
        h.insert("x-underpass-principal", HeaderValue::from_static("admin"));
        h.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-11-25"),
        );
        h.insert(
            "accept",
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let names: Vec<String> = forwardable_request_headers(&h)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["mcp-protocol-version", "accept"]);
    }

    #[test]
    fn client_forwarding_headers_are_replaced_by_what_the_edge_saw() {
        let req = Request::builder()
            .uri("/mcp/svc")
            .header("host", "mcp.example.com:8443")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-host", "evil.example.com")
            .header("x-forwarded-proto", "gopher")
            .header("x-forwarded-port", "1")
            .header("forwarded", "for=6.6.6.6")
            .header("x-real-ip", "6.6.6.6")
            .header("accept", "application/json")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let names: Vec<String> = forwardable_request_headers(&parts.headers)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["accept"], "client values stop at the edge");
        let conn = ConnInfo {
            peer: Some("[::ffff:192.0.2.7]:50000".parse().unwrap()),
            ..ConnInfo::default()
        };
        let set: Vec<(String, String)> = forwarding_headers(&conn, &parts, true)
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8(v).unwrap()))
            .collect();
        let get = |n: &str| set.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-forwarded-for"), Some("192.0.2.7"));
        assert_eq!(get("x-forwarded-proto"), Some("https"));
        assert_eq!(get("x-forwarded-host"), Some("mcp.example.com:8443"));
        assert_eq!(
            get("forwarded"),
            Some("for=192.0.2.7;proto=https;host=\"mcp.example.com:8443\"")
        );
        assert_eq!(get("x-real-ip"), None);
        let v6 = ConnInfo {
            peer: Some("[2001:db8::1]:443".parse().unwrap()),
            ..ConnInfo::default()
        };
        let set = forwarding_headers(&v6, &parts, false);
        let fwd = set.iter().find(|(k, _)| k == "forwarded").unwrap();
        assert!(
            fwd.1.starts_with(b"for=\"[2001:db8::1]\";proto=http"),
            "{fwd:?}"
        );
    }

    #[test]
    fn response_headers_drop_hop_by_hop_and_cookies() {
        let (h, sse) = response_headers(vec![
            ("content-type".into(), b"text/event-stream".to_vec()),
            ("set-cookie".into(), b"a=1".to_vec()),
            ("connection".into(), b"close".to_vec()),
            ("mcp-session-id".into(), b"s1".to_vec()),
        ]);
        assert!(sse);
        assert!(h.get("set-cookie").is_none() && h.get("connection").is_none());
        assert_eq!(
            h.get("x-accel-buffering").map(|v| v.as_bytes()),
            Some(&b"no"[..])
        );
        assert_eq!(
            h.get("mcp-session-id").map(|v| v.as_bytes()),
            Some(&b"s1"[..])
        );
    }
}
