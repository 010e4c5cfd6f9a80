//! `underpass-connector doctor`: pre-flight checks of a connector's configuration, and the same
//! checks the connector runs at start for its readiness ([`crate::health`]).
//!
//! What is checked: the certificate (identity, expiry, key, chain to `ca`), the revocation
//! list, every edge (its name resolves; a real QUIC and TLS-over-TCP probe with this
//! connector's identity, as `transport` says; the clock against the edge's), and every
//! backend (HTTP reachable, or the stdio program found and executable, never started).
//! The verdicts are plain functions of what the I/O found ([`probe_check`], [`clock_check`],
//! [`by_transport`]), the model and table are `underpass_shared::doctor`; [`probe`] and
//! [`backend`] do the bounded I/O, concurrently for independent targets.

pub mod backend;
pub mod probe;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use underpass_pki::time::OffsetDateTime;
use underpass_proto::identity::Role;
use underpass_shared::doctor::cert::{self, Expect, ExpectIdentity};
use underpass_shared::doctor::{Check, Status};

use crate::carrier::{Carrier, Carriers};
use crate::config::{ConnectorConfig, TunnelTransport};
use probe::{ClockSample, ProbeFailure, Probed, PROBE_TIMEOUT};

/// Skew above which the clock check warns: short-lived tokens and fresh certificates start to
/// look not yet valid or expired to one side.
pub const SKEW_WARN_MS: u64 = 5_000;
/// Skew above which it fails: the issuers' allowed skew is exceeded, certificates and tokens
/// break.
pub const SKEW_FAIL_MS: u64 = 60_000;
/// Addresses of one edge name probed (a name with more is probed on its first ones).
const MAX_ADDRESSES: usize = 4;

/// What to do about a connector certificate near or past its end.
const RENEW: &str = "renewal over a tunnel failed or is not set up: enroll again \
    (`underpass-certs token create`, `underpass-connector enroll`) or issue a new one \
    (`underpass-certs issue connector`)";

/// Which checks run, and how far they reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `underpass-connector doctor`: everything, edges probed with real handshakes, backends
    /// asked for an HTTP answer.
    Doctor,
    /// The running connector's own checks for its readiness: local ones, and backends
    /// reached by a TCP connection only (no request a backend would see or log, every 30 s
    /// while something fails). Its edges are checked by its real tunnels, which `/readyz`
    /// counts, not by extra probe handshakes.
    Running,
}

/// Runs the checks of `scope` on a loaded configuration (the `config` row is the caller's).
pub async fn run_checks(config: &ConnectorConfig, scope: Scope) -> Vec<Check> {
    let mut out = certificate_checks(config);
    out.push(revocation_check(config.revocation_list.as_deref()));
    if scope == Scope::Running {
        let backends = join_all(
            config
                .services
                .iter()
                .map(|s| backend::check(s, backend::Reach::Connect)),
        );
        out.extend(backends.await);
        return out;
    }
    let carriers = match crate::tunnel_carriers(config) {
        Ok(c) => Ok(c),
        Err(e) => Err(format!("{e:#}")),
    };
    let edges = join_all(
        config
            .edges
            .iter()
            .map(|edge| check_edge(config, carriers.as_ref(), edge)),
    );
    let backends = join_all(
        config
            .services
            .iter()
            .map(|s| backend::check(s, backend::Reach::Answer)),
    );
    let (edges, backends) = tokio::join!(edges, backends);
    out.extend(edges.into_iter().flatten());
    out.extend(backends);
    out
}

/// The `config` row of a configuration that loaded.
pub fn config_check(path: &Path, config: &ConnectorConfig) -> Check {
    Check::pass(
        "config",
        format!(
            "{} loaded: connector {:?}, {} edge(s), {} service(s), transport {}",
            path.display(),
            config.name,
            config.edges.len(),
            config.services.len(),
            transport_name(config.transport)
        ),
    )
}

fn transport_name(t: TunnelTransport) -> &'static str {
    match t {
        TunnelTransport::Auto => "auto",
        TunnelTransport::Quic => "quic",
        TunnelTransport::Tcp => "tcp",
    }
}

/// The certificate rows, checked as `run` would load it (this connector's name and domain).
pub fn certificate_checks(config: &ConnectorConfig) -> Vec<Check> {
    let expect = Expect {
        identity: Some(ExpectIdentity {
            role: Role::Connector,
            trust_domain: &config.trust_domain,
            name: Some(&config.name),
        }),
        renew: RENEW,
    };
    cert::check_pair(
        "certificate",
        &config.cert,
        &config.key,
        Some(&config.ca),
        &expect,
        OffsetDateTime::now_utc(),
    )
}

/// The revocation list is readable and well-formed (the connector does not start otherwise).
pub fn revocation_check(path: Option<&Path>) -> Check {
    let name = "revocation list";
    let Some(path) = path else {
        return Check::skip(name, "not configured (`revocation_list`)");
    };
    match underpass_pki::revocation::read_revocation_file(path) {
        Ok(list) => Check::pass(name, format!("{}: {}", path.display(), list.summary())),
        Err(e) => Check::fail(
            name,
            format!("{}: {e}", path.display()),
            "fix or replace the file (`underpass-certs revoke` writes it), or remove \
             `revocation_list`; the connector does not start without it",
        ),
    }
}

/// DNS, the carriers and the clock of one configured edge.
async fn check_edge(
    config: &ConnectorConfig,
    carriers: Result<&Carriers, &String>,
    edge: &str,
) -> Vec<Check> {
    let label = format!("edge {edge}");
    let addrs = match probe::resolve(edge).await {
        Ok(addrs) => addrs,
        Err(e) => {
            return vec![Check::fail(
                format!("{label} dns"),
                format!("cannot resolve {:?}: {e}", crate::tunnel::host_of(edge)),
                "fix the name in `edges`, or this host's resolver (/etc/resolv.conf, /etc/hosts)",
            )]
        }
    };
    let listed: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let mut out = vec![Check::pass(
        format!("{label} dns"),
        format!("resolves to {}", listed.join(", ")),
    )];
    let carriers = match carriers {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::skip(
                format!("{label} tunnel"),
                format!("not probed: no usable TLS identity ({e}); see the certificate rows"),
            ));
            return out;
        }
    };
    let server_name = config
        .edge_server_name
        .clone()
        .unwrap_or_else(|| crate::tunnel::host_of(edge).to_owned());
    let addrs: Vec<SocketAddr> = addrs.into_iter().take(MAX_ADDRESSES).collect();
    let many = addrs.len() > 1;
    let probes = addrs.iter().map(|&addr| {
        let server_name = server_name.clone();
        async move {
            let quic = async {
                if carriers.mode == TunnelTransport::Tcp {
                    return None;
                }
                Some(probe::probe(carriers, Carrier::Quic, addr, &server_name, &config.name).await)
            };
            let tcp = async {
                if carriers.mode == TunnelTransport::Quic {
                    return None;
                }
                Some(probe::probe(carriers, Carrier::Tcp, addr, &server_name, &config.name).await)
            };
            let (quic, tcp) = tokio::join!(quic, tcp);
            (addr, quic, tcp)
        }
    });
    let mut clock: Option<Check> = None;
    for (addr, quic, tcp) in join_all(probes).await {
        let at = if many {
            format!("{label} ({addr})")
        } else {
            label.clone()
        };
        let quic_row = quic
            .as_ref()
            .map(|p| probe_check(&format!("{at} quic"), Carrier::Quic, addr, p));
        let tcp_row = tcp
            .as_ref()
            .map(|p| probe_check(&format!("{at} tcp"), Carrier::Tcp, addr, p));
        out.extend(by_transport(carriers.mode, &at, quic_row, tcp_row));
        if clock.is_none() {
            clock = [quic, tcp].into_iter().flatten().find_map(|p| match p {
                Probed::Welcomed { clock: Some(c), .. } => {
                    Some(clock_check(&format!("{label} clock"), c))
                }
                _ => None,
            });
        }
    }
    out.push(clock.unwrap_or_else(|| {
        Check::skip(
            format!("{label} clock"),
            "not measured: no probe reached an edge that answers `Time`",
        )
    }));
    out
}

/// A probe's result as a row, with what to do.
pub fn probe_check(name: &str, carrier: Carrier, addr: SocketAddr, probed: &Probed) -> Check {
    let (proto, port) = match carrier {
        Carrier::Quic => ("udp", addr.port()),
        Carrier::Tcp => ("tcp", addr.port()),
    };
    let via = match carrier {
        Carrier::Quic => "QUIC",
        Carrier::Tcp => "TLS over TCP",
    };
    match probed {
        Probed::Welcomed { edge, rtt_ms, .. } => Check::pass(
            name,
            format!(
                "{via} handshake with {edge} at {addr}: this identity is accepted ({rtt_ms} ms)"
            ),
        ),
        // An edge from before the doctor probe refuses a Hello without services, after
        // accepting the handshake: the identity is fine.
        Probed::Refused(reason) if reason.contains("offers no service") => Check::pass(
            name,
            format!("{via} handshake with {addr}: this identity is accepted (older edge)"),
        ),
        Probed::Refused(reason) => Check::fail(
            name,
            format!("the edge at {addr} refused this connector: {reason}"),
            "do what the edge's reason says (connector name, the edge's [[services]] grants)",
        ),
        Probed::Failed(ProbeFailure::Timeout) => Check::fail(
            name,
            format!("no {via} answer from {proto}/{addr} within {PROBE_TIMEOUT:?}"),
            format!(
                "check that the edge runs and that {proto} port {port} is open from here to \
                 it (firewall, security group, NAT)"
            ),
        ),
        Probed::Failed(ProbeFailure::Error(e)) => Check::fail(
            name,
            format!("{via} to {addr}: {e}"),
            todo_for(e, proto, port),
        ),
    }
}

/// What to do about a failed dial, from its error's words.
pub fn todo_for(error: &str, proto: &str, port: u16) -> String {
    let e = error.to_ascii_lowercase();
    if e.contains("connection refused") {
        format!(
            "nothing listens on {proto} port {port}: start the edge, or fix `edges` (the \
             edge's [tunnel] listen address)"
        )
    } else if e.contains("closed the connection") || e.contains("alert") {
        "the edge refused this certificate: it must be valid now, issued under the edge's \
         [tunnel] ca, and not revoked"
            .to_owned()
    } else if e.contains("certificate") || e.contains("invalid peer") || e.contains("unknownissuer")
    {
        "the edge's certificate is not trusted: `ca` must be the CA that issued it, and \
         `edge_server_name` (or the host in `edges`) a name it carries"
            .to_owned()
    } else if e.contains("timed out") {
        format!("check that the edge runs and that {proto} port {port} is open from here to it")
    } else {
        "check the edge address in `edges` and that the edge runs".to_owned()
    }
}

/// The carrier rows as `transport` makes them matter: a carrier not used is SKIP; with
/// `auto`, a QUIC failure while TCP works is a WARN (tunnels fall back and work).
pub fn by_transport(
    mode: TunnelTransport,
    label: &str,
    quic: Option<Check>,
    tcp: Option<Check>,
) -> Vec<Check> {
    let quic = quic
        .unwrap_or_else(|| Check::skip(format!("{label} quic"), "not used: transport = \"tcp\""));
    let tcp = tcp.unwrap_or_else(|| {
        Check::skip(
            format!("{label} tcp"),
            "not used: transport = \"quic\" (no TCP fallback)",
        )
    });
    if mode == TunnelTransport::Auto && quic.status == Status::Fail && tcp.status == Status::Pass {
        let quic = Check::warn(
            quic.name,
            format!(
                "{}; tunnels fall back to TLS over TCP, which works",
                quic.detail
            ),
            format!(
                "{} for QUIC (lower latency), or set transport = \"tcp\"",
                quic.todo
            ),
        );
        return vec![quic, tcp];
    }
    vec![quic, tcp]
}

/// The edge's clock against the midpoint of the round trip.
pub fn clock_check(name: &str, sample: ClockSample) -> Check {
    let mid = sample.sent_ms + (sample.received_ms - sample.sent_ms) / 2;
    let skew = sample.edge_ms - mid;
    let rtt = sample.received_ms - sample.sent_ms;
    let size = Duration::from_millis(skew.unsigned_abs());
    let how = if skew >= 0 { "ahead of" } else { "behind" };
    let detail = format!(
        "the edge's clock is {} {how} this host's (round trip {rtt} ms)",
        if size < Duration::from_secs(2) {
            format!("{} ms", size.as_millis())
        } else {
            cert::humanize(size)
        }
    );
    let todo = "synchronise both clocks (NTP: chronyd, systemd-timesyncd)";
    match skew.unsigned_abs() {
        s if s > SKEW_FAIL_MS => Check::fail(
            name,
            format!("{detail}: certificates and tokens break"),
            todo,
        ),
        s if s > SKEW_WARN_MS => Check::warn(name, detail, todo),
        _ => Check::pass(name, detail),
    }
}

#[cfg(test)]
mod tests;
