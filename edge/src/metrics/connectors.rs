//! The `underpass_connector_*` families: the figures connectors report about themselves over
//! their control stream (`Stats`; a connector listens on no port), as the edge keeps them
//! ([`crate::tunnels::stats`]: bounded, latest snapshot per connector, expiring).

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use underpass_proto::control::Stats;

/// The `underpass_connector_*` families, read when scraped.
pub(super) struct ConnectorMetrics(pub Arc<crate::tunnels::registry::Registry>);

impl std::fmt::Debug for ConnectorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectorMetrics")
    }
}

/// A per-connector gauge family: its name, help, and how to read it from a snapshot.
type Gauge = (&'static str, &'static str, fn(&Stats) -> u64);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabel {
    connector: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    connector: String,
    service: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    connector: String,
    service: String,
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeLabels {
    connector: String,
    edge: String,
}

impl Collector for ConnectorMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let all = self.0.connector_stats.current(Instant::now());
        let mut family = encoder.encode_descriptor(
            "connector_exchanges",
            "Exchanges connectors served since they started, by service and result: ok, backend_error (the backend failed), refused (over the service's caps)",
            None,
            MetricType::Counter,
        )?;
        for (connector, stats) in &all {
            for s in &stats.services {
                for (result, n) in [
                    ("ok", s.ok),
                    ("backend_error", s.backend_error),
                    ("refused", s.refused),
                ] {
                    let labels = ExchangeLabels {
                        connector: connector.clone(),
                        service: s.service.clone(),
                        result,
                    };
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "connector_backend_bytes",
            "Body bytes connectors sent to their backends (in) and received from them (out), by service",
            None,
            MetricType::Counter,
        )?;
        for (connector, stats) in &all {
            for s in &stats.services {
                for (direction, n) in [("in", s.bytes_in), ("out", s.bytes_out)] {
                    let labels = BytesLabels {
                        connector: connector.clone(),
                        service: s.service.clone(),
                        direction,
                    };
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let gauges: [Gauge; 3] = [
            (
                "connector_stdio_processes",
                "Stdio backend processes each connector runs now",
                |s: &Stats| s.stdio_processes,
            ),
            (
                "connector_bridge_sessions",
                "Legacy (2024-11-05) bridge sessions open at each connector",
                |s: &Stats| s.bridge_sessions,
            ),
            (
                "connector_exchanges_in_flight",
                "Exchanges each connector is serving now",
                |s: &Stats| s.in_flight,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (connector, stats) in &all {
                let labels = ConnectorLabel {
                    connector: connector.clone(),
                };
                let v = i64::try_from(value(stats)).unwrap_or(i64::MAX);
                ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "connector_tunnel_connects",
            "Tunnels each connector established since it started, by edge as the connector names it",
            None,
            MetricType::Counter,
        )?;
        for (connector, stats) in &all {
            for c in &stats.connects {
                let labels = EdgeLabels {
                    connector: connector.clone(),
                    edge: c.edge.clone(),
                };
                ConstCounter::new(c.connects).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
