//! Which host a request addresses, and whether the edge answers to it: Host and Origin
//! checks against DNS rebinding, on every protocol.

use http::StatusCode;
use underpass_mcp::jsonrpc::code;

use crate::config::ClientsConfig;
use crate::http::respond::{error_response, Refusal};

/// Host and Origin validation against DNS rebinding: [`check_host`], then a browser `Origin`
/// must be the edge itself or explicitly allowed.
pub fn check_host_origin(
    clients: &ClientsConfig,
    parts: &http::request::Parts,
) -> Result<(), Refusal> {
    let authority = check_host(clients, parts)?;
    let mut origins = parts.headers.get_all(http::header::ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    // One Origin per request (RFC 6454 §7): a second one would go unchecked.
    if origins.next().is_some() {
        return Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "more than one Origin header",
        )));
    }
    let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
    let same_origin =
        origin == format!("https://{authority}") || origin == format!("http://{authority}");
    let listed = clients
        .allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&origin) || o == "*");
    if !same_origin && !listed {
        return Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            code::INVALID_REQUEST,
            &format!("Origin {origin:?} is not allowed (see [clients] allowed_origins)"),
        )));
    }
    Ok(())
}

/// The authority (host and port) the client addressed, lowercased: `:authority` on HTTP/2 and
/// the target of an absolute-form HTTP/1.1 request (both land in the request URI), else
/// `Host`. A request naming two different authorities is malformed (RFC 9113 §8.3.1), and one
/// naming none is refused: every check below and every URL the edge echoes depend on it.
pub fn request_authority(parts: &http::request::Parts) -> Result<String, Refusal> {
    let bad = |message: &str| {
        Box::new(error_response(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            message,
        ))
    };
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad("more than one Host header"));
    }
    let host = match host.map(|h| h.to_str()) {
        Some(Ok(h)) => Some(h.trim().to_ascii_lowercase()),
        Some(Err(_)) => return Err(bad("the Host header is not visible ASCII")),
        None => None,
    };
    let target = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_ascii_lowercase());
    match (target, host) {
        (Some(t), Some(h)) if t != h => Err(bad(
            "the request names two different hosts (:authority or target vs Host)",
        )),
        (Some(a), _) | (None, Some(a)) if !a.is_empty() => Ok(a),
        _ => Err(bad(
            "the request names no host (send Host, or :authority over HTTP/2)",
        )),
    }
}

/// The host check against DNS rebinding, on every protocol: a loopback listener answers only
/// to loopback names; with `allowed_hosts`, only those names (and loopback names on a loopback
/// listener). Returns the request's authority (see [`request_authority`]).
pub fn check_host(
    clients: &ClientsConfig,
    parts: &http::request::Parts,
) -> Result<String, Refusal> {
    let authority = request_authority(parts)?;
    let name = host_name(&authority);
    let allowed = if clients.allowed_hosts.is_empty() {
        !clients.listen.ip().is_loopback() || is_loopback_name(name)
    } else {
        clients
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
            || (clients.listen.ip().is_loopback() && is_loopback_name(name))
    };
    if !allowed {
        return Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            code::INVALID_REQUEST,
            &format!("Host {authority:?} is not served here (see [clients] allowed_hosts)"),
        )));
    }
    Ok(authority)
}

fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("localhost:8443"), "localhost");
        assert_eq!(host_name("[::1]:8443"), "::1");
        assert_eq!(host_name("edge.example.com"), "edge.example.com");
        assert!(is_loopback_name("127.0.0.1"));
        assert!(is_loopback_name("::1"));
        assert!(is_loopback_name("localhost"));
        assert!(!is_loopback_name("evil.example.com"));
        assert!(!is_loopback_name("localhost.evil.com"));
    }
}
