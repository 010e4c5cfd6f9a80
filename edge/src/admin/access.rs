//! Who may do what on the admin listener: a pure decision from the listener (loopback or not,
//! TLS or not), the caller's verified certificate identity (if any), the method and the path.
//! The shell in `admin/mod.rs` asks [`decide`] before it reads a body or touches any state.
//!
//! The rule table (contract in DESIGN.md, "Contract additions for this round"):
//!
//! | path | loopback listener | other listener |
//! |---|---|---|
//! | `/healthz`, `/readyz`, `/.well-known/jwks.json` | open | open (probes, key set) |
//! | `/metrics`, `/`, `/dashboard.*`, `GET /api/...` | open | operator certificate (needs TLS) |
//! | `POST /api/...` (mutating) | open | operator certificate (needs TLS) |
//!
//! The listener is classified by the address it is bound to (`[admin] listen`): `127.0.0.0/8`
//! and `::1` are loopback; anything else, `0.0.0.0` included, is not, whoever connects.

use underpass_proto::identity::Role;

/// The admin listener, as bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Bound to a loopback address: only local processes reach it.
    Loopback,
    /// Bound to any other address; `tls` when `[admin] cert` and `key` are set.
    Network { tls: bool },
}

impl Listener {
    pub fn of(addr: std::net::SocketAddr, tls: bool) -> Listener {
        if addr.ip().is_loopback() {
            Listener::Loopback
        } else {
            Listener::Network { tls }
        }
    }
}

/// What the caller proved at the TLS handshake (checked against `[tunnel] ca`, the trust
/// domain and the revocation list), re-read per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No client certificate (or no TLS).
    Anonymous,
    /// A valid certificate of this role and name.
    Certificate { role: Role, name: String },
    /// A certificate revoked since the handshake.
    Revoked,
}

/// The kinds of endpoint, by what they expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Probes and the public key set: open to anyone who reaches the listener.
    Probe,
    /// Read-only views: metrics, the dashboard, `GET /api/...`.
    Observe,
    /// Changes the edge's state: `POST /api/...`.
    Mutate,
}

/// An endpoint of the admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Jwks,
    Metrics,
    Dashboard,
    DashboardJs,
    DashboardCss,
    Connectors,
    Services,
    Sessions,
    Denials,
    Audit,
    Certificates,
    /// `GET /api/federation/names`: the names the federated endpoint cut to 64 characters.
    FederationNames,
    /// `POST /api/connectors/{name}/drain`.
    Drain(String),
    /// `POST /api/connectors/{name}/resume`.
    Resume(String),
    /// `POST /api/sessions/end`.
    EndSessions,
    /// `POST /api/reload`.
    Reload,
}

impl Route {
    /// The endpoint at `path` (no query), if any.
    pub fn of(path: &str) -> Option<Route> {
        Some(match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/.well-known/jwks.json" => Route::Jwks,
            "/metrics" => Route::Metrics,
            "/" => Route::Dashboard,
            "/dashboard.js" => Route::DashboardJs,
            "/dashboard.css" => Route::DashboardCss,
            "/api/connectors" => Route::Connectors,
            "/api/services" => Route::Services,
            "/api/sessions" => Route::Sessions,
            "/api/denials" => Route::Denials,
            "/api/audit" => Route::Audit,
            "/api/certificates" => Route::Certificates,
            "/api/federation/names" => Route::FederationNames,
            "/api/sessions/end" => Route::EndSessions,
            "/api/reload" => Route::Reload,
            _ => {
                let rest = path.strip_prefix("/api/connectors/")?;
                let (name, action) = rest.split_once('/')?;
                // Connector names are validated names: no encoding, no slashes.
                if name.is_empty()
                    || name.len() > 128
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                {
                    return None;
                }
                match action {
                    "drain" => Route::Drain(name.to_owned()),
                    "resume" => Route::Resume(name.to_owned()),
                    _ => return None,
                }
            }
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Route::Healthz | Route::Readyz | Route::Jwks => Kind::Probe,
            Route::Drain(_) | Route::Resume(_) | Route::EndSessions | Route::Reload => Kind::Mutate,
            _ => Kind::Observe,
        }
    }

    /// The one method the endpoint takes (its `Allow` header).
    pub fn method(&self) -> &'static str {
        match self.kind() {
            Kind::Mutate => "POST",
            Kind::Probe | Kind::Observe => "GET",
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Serve it; `actor` names who asked (for the log line of a mutating call).
    Allow { route: Route, actor: String },
    /// No such endpoint (404).
    NotFound,
    /// The endpoint takes another method (405 with `Allow`).
    MethodNotAllowed { allow: &'static str },
    /// 401: no identity where one is needed; the reason says what to present.
    Unauthenticated { reason: String },
    /// 403: the identity (or the listener) does not allow it; the reason says what to change.
    Forbidden { reason: String },
}

/// Whether `method` on `path` may be served to `peer` on `listener`. `HEAD` counts as `GET`.
pub fn decide(listener: Listener, peer: &Peer, method: &str, path: &str) -> Access {
    let Some(route) = Route::of(path) else {
        return Access::NotFound;
    };
    let method = if method == "HEAD" { "GET" } else { method };
    if method != route.method() {
        return Access::MethodNotAllowed {
            allow: route.method(),
        };
    }
    let actor = match peer {
        Peer::Certificate { role, name } => format!("{role}:{name}"),
        Peer::Anonymous | Peer::Revoked => "anonymous".to_owned(),
    };
    if route.kind() == Kind::Probe {
        return Access::Allow { route, actor };
    }
    match (listener, peer) {
        (Listener::Loopback, _) => Access::Allow {
            route,
            actor: match peer {
                Peer::Certificate { .. } => actor,
                _ => "loopback".to_owned(),
            },
        },
        (Listener::Network { tls: false }, _) => Access::Forbidden {
            reason: "the admin listener is not on a loopback address and has no TLS: set [admin] \
                     cert and key and call it with an operator certificate (underpass-certs \
                     issue operator), or bind [admin] listen to 127.0.0.1"
                .to_owned(),
        },
        (Listener::Network { tls: true }, Peer::Anonymous) => Access::Unauthenticated {
            reason: "an operator client certificate is required (underpass-certs issue \
                     operator --dir DIR --name N)"
                .to_owned(),
        },
        (Listener::Network { tls: true }, Peer::Revoked) => Access::Forbidden {
            reason: "the client certificate has been revoked".to_owned(),
        },
        (Listener::Network { tls: true }, Peer::Certificate { role, name }) => {
            if *role == Role::Operator {
                Access::Allow { route, actor }
            } else {
                Access::Forbidden {
                    reason: format!(
                        "certificate {role}:{name} is not an operator: the admin API needs a \
                         certificate of role operator (underpass-certs issue operator)"
                    ),
                }
            }
        }
    }
}

/// What a browser says about where a request comes from: the `Host`, `Origin` and
/// `Sec-Fetch-Site` headers, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Provenance<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub fetch_site: Option<&'a str>,
}

/// Refuses what a web page could make a browser send to the admin listener, after
/// [`decide`] allowed the caller: on a loopback listener every view and change must name a
/// loopback host (a page on a name that resolves to 127.0.0.1 cannot read the API: DNS
/// rebinding), and a change must not come from another origin (a page elsewhere cannot
/// drain a connector through an operator's browser, which holds the loopback reach or the
/// operator certificate). Clients that are not browsers send neither `Origin` nor
/// `Sec-Fetch-Site` and pass. `Err` is the 403's reason.
pub fn check_provenance(
    listener: Listener,
    kind: Kind,
    from: Provenance<'_>,
) -> Result<(), String> {
    if kind == Kind::Probe {
        return Ok(());
    }
    if listener == Listener::Loopback && !from.host.is_some_and(is_loopback_host) {
        return Err(format!(
            "Host {:?} does not name this loopback listener: call it as 127.0.0.1 or localhost",
            from.host.unwrap_or("")
        ));
    }
    if kind == Kind::Mutate {
        if let Some(site) = from.fetch_site {
            if site != "same-origin" && site != "none" {
                return Err(format!(
                    "a change must not come from another site (Sec-Fetch-Site: {site})"
                ));
            }
        }
        if let Some(origin) = from.origin {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if Some(origin_host) != from.host {
                return Err(format!(
                    "a change must come from the admin listener's own origin, not {origin}"
                ));
            }
        }
    }
    Ok(())
}

/// `localhost`, an IPv4 loopback literal or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests;
