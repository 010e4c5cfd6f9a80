//! The edge side of tunnels: accept connector connections, run the Hello/Welcome handshake,
//! and keep the registry in step with which tunnels are alive.

use std::sync::Arc;
use std::time::Duration;

use underpass_pki::revocation::certificate_serial;
use underpass_shared::frame::{self, codes, Control, Limits, PROTOCOL_VERSION};
use underpass_shared::identity::SpiffeId;
use underpass_shared::transport::TunnelConn;

use crate::config::EdgeConfig;
use crate::registry::Registry;

/// How long a connector has to complete QUIC + TLS and send its Hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive interval announced to connectors (the one both ends' transport uses).
const HEARTBEAT: Duration = underpass_shared::quic::KEEP_ALIVE;

/// The decision on a connector's Hello: a plain function of the Hello, the cert identity and
/// the config, so it can be tested without a socket.
pub fn judge_hello(
    config: &EdgeConfig,
    cert_name: &str,
    hello: &Control,
) -> Result<Vec<String>, String> {
    let Control::Hello {
        protocol,
        connector,
        services,
        ..
    } = hello
    else {
        return Err("expected Hello as the first control frame".into());
    };
    if *protocol != PROTOCOL_VERSION {
        return Err(format!(
            "tunnel protocol {protocol} is not supported; this edge speaks {PROTOCOL_VERSION}"
        ));
    }
    if connector != cert_name {
        return Err(format!(
            "connector calls itself {connector:?} but its certificate says {cert_name:?}; set `name = \"{cert_name}\"` in connector.toml"
        ));
    }
    if services.is_empty() {
        return Err("connector offers no service".into());
    }
    let refused: Vec<&str> = services
        .iter()
        .filter(|s| !config.grants(cert_name, s))
        .map(String::as_str)
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "connector {cert_name:?} is not granted service(s) {refused:?} in this edge's [[services]] table"
        ));
    }
    Ok(services.clone())
}

pub async fn accept_loop(
    endpoint: quinn::Endpoint,
    config: Arc<EdgeConfig>,
    registry: Arc<Registry>,
    edge_name: String,
) {
    while let Some(incoming) = endpoint.accept().await {
        let config = config.clone();
        let registry = registry.clone();
        let edge_name = edge_name.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await;
            let conn = match handshake {
                Ok(Ok(conn)) => TunnelConn::Quic(conn),
                Ok(Err(e)) => {
                    return tracing::warn!(%remote, "tunnel refused: handshake failed: {e}")
                }
                Err(_) => return tracing::warn!(%remote, "tunnel refused: handshake timed out"),
            };
            if let Err(e) = serve_tunnel(conn, &config, &registry, &edge_name).await {
                tracing::warn!(%remote, "tunnel refused: {e}");
            }
        });
    }
}

/// Runs one authenticated tunnel (any transport): the Hello/Welcome handshake on the control
/// stream, then keeps the tunnel in the registry until it closes.
async fn serve_tunnel(
    conn: TunnelConn,
    config: &EdgeConfig,
    registry: &Registry,
    edge_name: &str,
) -> Result<(), String> {
    let (mut send, hello, cert_name, cert_serial) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            let leaf = conn
                .peer_leaf()
                .ok_or("connector presented no certificate")?;
            let id = SpiffeId::from_certificate_der(&leaf).map_err(|e| e.to_string())?;
            let serial = certificate_serial(&leaf).map_err(|e| e.to_string())?;
            let (send, mut recv) = conn
                .accept_exchange()
                .await
                .map_err(|e| format!("no control stream: {e}"))?;
            let hello = frame::read_frame::<Control, _>(&mut recv)
                .await
                .map_err(|e| format!("bad Hello from {id}: {e}"))?
                .ok_or_else(|| format!("{id} closed the control stream before Hello"))?;
            Ok::<_, String>((send, hello, id.name, serial))
        })
        .await
        .map_err(|_| "connector did not complete its handshake in time".to_string())??;

    let services = match judge_hello(config, &cert_name, &hello) {
        Ok(services) => services,
        Err(reason) => {
            let _ = frame::write_frame(
                &mut send,
                &Control::Refused {
                    reason: reason.clone(),
                },
            )
            .await;
            let _ = send.finish();
            // Give the Refused frame a moment to leave before closing.
            let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
            conn.close(codes::REFUSED, reason.as_bytes());
            return Err(reason);
        }
    };

    let welcome = Control::Welcome {
        edge: edge_name.to_owned(),
        limits: Limits {
            max_request_body: config.clients.max_request_body as u64,
            max_concurrent_exchanges: 16_384,
        },
        heartbeat_ms: HEARTBEAT.as_millis() as u64,
    };
    frame::write_frame(&mut send, &welcome)
        .await
        .map_err(|e| format!("cannot send Welcome to {cert_name}: {e}"))?;

    let tunnel = registry.add(
        cert_name.clone(),
        services.clone(),
        conn.clone(),
        cert_serial,
    );
    tracing::info!(
        connector = %cert_name,
        remote = %conn.remote_addr(),
        transport = conn.transport(),
        ?services,
        "tunnel up"
    );
    let reason = conn.closed().await;
    registry.remove(tunnel.id);
    tracing::info!(connector = %cert_name, "tunnel down: {reason}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EdgeConfig {
        toml::from_str(
            r#"
            [clients]
            listen = "127.0.0.1:8443"
            insecure_plaintext = true
            [tunnel]
            listen = "127.0.0.1:7844"
            cert = "e.crt"
            key = "e.key"
            ca = "ca.crt"
            [[services]]
            name = "everything"
            connectors = ["dc1"]
            [[services]]
            name = "files"
            connectors = ["dc2"]
            "#,
        )
        .unwrap()
    }

    fn hello(name: &str, services: &[&str]) -> Control {
        Control::Hello {
            protocol: PROTOCOL_VERSION,
            connector: name.into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            build: "t".into(),
        }
    }

    #[test]
    fn grants_only_configured_services() {
        let c = config();
        assert_eq!(
            judge_hello(&c, "dc1", &hello("dc1", &["everything"])).unwrap(),
            vec!["everything"]
        );
        let err = judge_hello(&c, "dc1", &hello("dc1", &["everything", "files"])).unwrap_err();
        assert!(err.contains("\"files\""), "{err}");
        assert!(judge_hello(&c, "dc1", &hello("dc2", &["files"])).is_err());
        assert!(judge_hello(&c, "dc1", &hello("dc1", &[])).is_err());
        let mut old = hello("dc1", &["everything"]);
        if let Control::Hello { protocol, .. } = &mut old {
            *protocol = 99;
        }
        assert!(judge_hello(&c, "dc1", &old)
            .unwrap_err()
            .contains("protocol 99"));
    }
}
