//! Tunnel families, read when scraped: `underpass_tunnels`, `underpass_sessions`,
//! `underpass_tunnel_rtt_seconds` and `underpass_tunnel_connects_total`.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::tunnels::registry::Registry as Tunnels;

/// The tunnel families, read from the registry when scraped.
pub(super) struct TunnelMetrics(pub Arc<Tunnels>);

impl std::fmt::Debug for TunnelMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelMetrics")
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct TunnelLabels {
    connector: String,
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RttLabels {
    connector: String,
    transport: &'static str,
    /// The edge's id of the tunnel (as in the admin API): bounded by the tunnels up.
    tunnel: u64,
}

impl Collector for TunnelMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let tunnels = self.0.tunnels();
        let mut counts = BTreeMap::new();
        for tunnel in &tunnels {
            let labels = TunnelLabels {
                connector: tunnel.connector.clone(),
                transport: tunnel.conn.transport(),
            };
            *counts.entry(labels).or_insert(0i64) += 1;
        }
        let mut family = encoder.encode_descriptor(
            "tunnels",
            "Live tunnels by connector and transport",
            None,
            MetricType::Gauge,
        )?;
        for (labels, count) in counts {
            ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tunnel_rtt_seconds",
            "Round-trip time of each live tunnel: QUIC's estimate, or over TCP the last HTTP/2 PING's",
            None,
            MetricType::Gauge,
        )?;
        for tunnel in &tunnels {
            let Some(rtt) = tunnel.conn.rtt() else {
                continue;
            };
            let labels = RttLabels {
                connector: tunnel.connector.clone(),
                transport: tunnel.conn.transport(),
                tunnel: tunnel.id,
            };
            ConstGauge::new(rtt.as_secs_f64()).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tunnel_connects",
            "Tunnels accepted since start by connector and transport: its rate is the reconnect rate",
            None,
            MetricType::Counter,
        )?;
        for (connector, transport, n) in self.0.connects.snapshot() {
            let labels = TunnelLabels {
                connector,
                transport,
            };
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        let sessions = ConstGauge::new(i64::try_from(self.0.session_count()).unwrap_or(i64::MAX));
        sessions.encode(encoder.encode_descriptor(
            "sessions",
            "Legacy MCP sessions this edge holds",
            None,
            sessions.metric_type(),
        )?)?;
        Ok(())
    }
}
