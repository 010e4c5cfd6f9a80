//! `[telemetry]` in either daemon's configuration.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::LogFormat;

/// `[telemetry]`: where spans go and how logs are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base URL of a collector (`http://127.0.0.1:4318`, or `https://...` with
    /// `otlp_ca`): spans are posted to `{otlp_endpoint}/v1/traces`. Absent (the default): no
    /// spans are made at all.
    #[serde(default)]
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// The CA bundle (PEM) that must sign an `https://` collector's certificate; required
    /// with https (for a collector under a public CA, the system's bundle, e.g.
    /// `/etc/ssl/certs/ca-certificates.crt`). TLS 1.3 only.
    #[serde(default)]
    pub otlp_ca: Option<PathBuf>,
    /// Allow a plaintext `otlp_endpoint` that is not on loopback (spans name principals,
    /// services and tools). Default false: such an endpoint is refused at start.
    #[serde(default)]
    pub otlp_insecure: bool,
    /// The `service.name` of the spans' resource (default: the daemon's name,
    /// `underpass-edge` or `underpass-connector`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// Finished spans waiting for export at most (default 8192: 200 ms of ≈ 40k spans a
    /// second, about 4 MiB); more are dropped and counted, so a slow or dead collector never
    /// slows requests.
    #[serde(default = "default_queue")]
    pub export_queue: usize,
    /// How log lines are written: `"text"` (default) or `"json"`.
    #[serde(default)]
    pub log_format: Option<LogFormat>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_ca: None,
            otlp_insecure: false,
            service_name: None,
            export_queue: default_queue(),
            log_format: None,
        }
    }
}

fn default_queue() -> usize {
    8192
}

impl TelemetryConfig {
    /// The log format in force: this table's `log_format`, or the older top-level key
    /// (`top_level`); both set is an error, so no one wonders which wins.
    pub fn log_format(&self, top_level: Option<LogFormat>) -> Result<LogFormat, String> {
        match (self.log_format, top_level) {
            (Some(_), Some(_)) => Err(
                "log_format is set twice (top level and [telemetry]): keep the one in [telemetry]"
                    .into(),
            ),
            (here, top) => Ok(here.or(top).unwrap_or_default()),
        }
    }

    /// The checks a loaded config must pass: a plaintext endpoint off loopback only by
    /// opt-in, `otlp_ca` with https and only then, a queue of at least one span.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.otlp_endpoint, &self.otlp_ca) {
            (Some(endpoint), None) if endpoint.tls => {
                return Err(format!(
                    "[telemetry] otlp_endpoint {} is https: set otlp_ca to the CA bundle that \
                     signs the collector's certificate (the system's bundle, e.g. \
                     /etc/ssl/certs/ca-certificates.crt, for a public CA)",
                    endpoint.base
                ));
            }
            (Some(endpoint), Some(_)) if !endpoint.tls => {
                return Err(format!(
                    "[telemetry] otlp_ca is set but otlp_endpoint {} is plain http: use an \
                     https:// endpoint, or remove otlp_ca",
                    endpoint.base
                ));
            }
            (None, Some(_)) => {
                return Err("[telemetry] otlp_ca is set without an otlp_endpoint".into());
            }
            _ => {}
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            if !endpoint.tls && !endpoint.is_loopback() && !self.otlp_insecure {
                return Err(format!(
                    "[telemetry] otlp_endpoint {} is plaintext HTTP off loopback, and spans name \
                     principals, services and tools: run a collector on loopback, or set \
                     otlp_insecure = true if the network to it is trusted",
                    endpoint.base
                ));
            }
        }
        if self.export_queue == 0 {
            return Err("[telemetry] export_queue must be at least 1".into());
        }
        Ok(())
    }
}

/// An OTLP/HTTP base URL: `http://host:port` or `https://host:port`, with an optional path
/// prefix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OtlpEndpoint {
    base: String,
    /// `https://`: spans go over TLS 1.3, to a certificate under `otlp_ca`.
    pub(super) tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl OtlpEndpoint {
    /// `host:port`, to connect to.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header.
    pub fn host_header(&self) -> String {
        self.authority()
    }

    /// The name the collector's certificate must carry (DNS name or IP address).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path spans are posted to.
    pub fn traces_path(&self) -> String {
        format!("{}/v1/traces", self.path)
    }

    /// The full URL spans are posted to.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.base)
    }

    fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl TryFrom<String> for OtlpEndpoint {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let uri: http::Uri = value
            .parse()
            .map_err(|e| format!("otlp_endpoint {value:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "otlp_endpoint {value:?} must start with http:// or https://"
                ))
            }
        };
        if uri.query().is_some() {
            return Err(format!("otlp_endpoint {value:?} must not have a query"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("otlp_endpoint {value:?} names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let path = uri.path().trim_end_matches('/').to_owned();
        Ok(OtlpEndpoint {
            base: value.trim_end_matches('/').to_owned(),
            tls,
            host,
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            path,
        })
    }
}
