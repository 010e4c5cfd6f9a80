use super::stream::{code_of, reason_of, CODE_BASE};
use h2::Reason;

#[test]
fn application_codes_round_trip_outside_http2_codes() {
    for code in 0..=4 {
        let reason = reason_of(code);
        assert!(u32::from(reason) >= CODE_BASE, "{reason:?}");
        assert_eq!(code_of(reason), Some(code));
    }
}

#[test]
fn http2_own_resets_read_as_quic_drops() {
    // h2 resets an abandoned stream with CANCEL (or NO_ERROR after an early answer): the same
    // as QUIC's implicit STOP_SENDING(0) when a stream is dropped.
    assert_eq!(code_of(Reason::CANCEL), Some(0));
    assert_eq!(code_of(Reason::NO_ERROR), Some(0));
    assert_eq!(code_of(Reason::PROTOCOL_ERROR), None);
    assert_eq!(code_of(Reason::from(CODE_BASE - 1)), None);
}

mod loopback {
    //! Both ends of a TCP tunnel on loopback, with real certificates: what crosses, and that
    //! resets and stops carry the same codes as over QUIC.

    use std::time::Duration;

    use bytes::Bytes;
    use underpass_proto::identity::{Role, DEFAULT_TRUST_DOMAIN};

    use crate::tcp::{accept, client_crypto, connect, server_crypto};
    use crate::tls::{tunnel_client_crypto, tunnel_server_crypto, Credentials, PeerPolicy};
    use crate::{TransportError, TunnelConn};

    fn policy(role: Role) -> PeerPolicy {
        PeerPolicy {
            role,
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            revoked: None,
        }
    }

    /// (edge end, connector end) of a fresh tunnel.
    async fn pair() -> (TunnelConn, TunnelConn, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        underpass_pki::ca::init(dir.path(), DEFAULT_TRUST_DOMAIN).unwrap();
        let edge = underpass_pki::issue::issue(dir.path(), Role::Edge, "edge", &[]).unwrap();
        let dc1 = underpass_pki::issue::issue(dir.path(), Role::Connector, "dc1", &[]).unwrap();
        let ca = dir.path().join("ca.crt");
        let edge_creds = Credentials::load(&edge.cert_path, &edge.key_path, &ca).unwrap();
        let dc1_creds = Credentials::load(&dc1.cert_path, &dc1.key_path, &ca).unwrap();
        let acceptor =
            server_crypto(tunnel_server_crypto(&edge_creds, policy(Role::Connector)).unwrap());
        let connector =
            client_crypto(tunnel_client_crypto(&dc1_creds, policy(Role::Edge)).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let edge_side = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            accept(tcp, &acceptor).await.unwrap()
        });
        let connector_side = connect(addr, "localhost", &connector).await.unwrap();
        let edge_side = edge_side.await.unwrap();
        (
            TunnelConn::Tcp(edge_side),
            TunnelConn::Tcp(connector_side),
            dir,
        )
    }

    fn bounded<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
        tokio::time::timeout(Duration::from_secs(10), f)
    }

    #[tokio::test]
    async fn control_stream_and_exchanges_cross_both_ways() {
        let (edge, connector, _dir) = pair().await;
        assert_eq!(edge.transport(), "tcp");
        assert!(
            edge.peer_leaf().is_some(),
            "the edge sees the connector's certificate"
        );
        assert!(connector.peer_leaf().is_some());
        // Both ends export the same re-authentication binding, and it is this session's.
        let binding = edge.reauth_binding();
        assert!(binding.is_some());
        assert_eq!(binding, connector.reauth_binding());
        let (other, _, _dir2) = pair().await;
        assert_ne!(binding, other.reauth_binding());

        // The control stream: the connector "opens" it, the edge "accepts" it.
        let (c_ctl, e_ctl) = tokio::join!(connector.open_exchange(), edge.accept_exchange());
        let ((mut c_send, mut c_recv), (mut e_send, mut e_recv)) = (c_ctl.unwrap(), e_ctl.unwrap());
        c_send.write_all(b"hello").await.unwrap();
        assert_eq!(
            &bounded(e_recv.read_chunk())
                .await
                .unwrap()
                .unwrap()
                .unwrap()[..],
            b"hello"
        );
        e_send.write_all(b"welcome").await.unwrap();
        assert_eq!(
            &bounded(c_recv.read_chunk())
                .await
                .unwrap()
                .unwrap()
                .unwrap()[..],
            b"welcome"
        );
        // The connector opens nothing else.
        assert!(connector.open_exchange().await.is_err());

        // An exchange, 3 MiB each way (beyond one flow-control window's worth of frames).
        let big = Bytes::from(vec![7u8; 3 << 20]);
        let (mut send, mut recv) = edge.open_exchange().await.unwrap();
        let body = big.clone();
        let writer = tokio::spawn(async move {
            send.write_chunks(&mut [body]).await.unwrap();
            send.finish().unwrap();
        });
        let (mut s, mut r) = bounded(connector.accept_exchange()).await.unwrap().unwrap();
        let got = bounded(r.read_to_end(8 << 20)).await.unwrap().unwrap();
        assert_eq!(got.len(), big.len());
        writer.await.unwrap();
        s.write_chunks(&mut [big.clone()]).await.unwrap();
        s.finish().unwrap();
        let back = bounded(recv.read_to_end(8 << 20)).await.unwrap().unwrap();
        assert_eq!(back.len(), big.len());

        // A body over the reader's limit.
        let (mut send, _recv) = edge.open_exchange().await.unwrap();
        send.write_all(&[1u8; 100]).await.unwrap();
        send.finish().unwrap();
        let (_s, mut r) = bounded(connector.accept_exchange()).await.unwrap().unwrap();
        assert!(matches!(
            bounded(r.read_to_end(10)).await.unwrap(),
            Err(TransportError::TooLong(10))
        ));
    }

    #[tokio::test]
    async fn resets_and_stops_carry_the_application_code() {
        let (edge, connector, _dir) = pair().await;
        let _ = tokio::join!(connector.open_exchange(), edge.accept_exchange());

        // The connector resets its answer: the edge reads the code.
        let (mut send, mut recv) = edge.open_exchange().await.unwrap();
        send.finish().unwrap();
        let (mut s, _r) = bounded(connector.accept_exchange()).await.unwrap().unwrap();
        s.write_all(b"partial").await.unwrap();
        s.reset(3);
        let mut outcome = Ok(None);
        for _ in 0..3 {
            outcome = bounded(recv.read_chunk()).await.unwrap();
            if outcome.is_err() {
                break;
            }
        }
        assert!(
            matches!(outcome, Err(TransportError::Reset(3))),
            "{outcome:?}"
        );

        // The edge abandons an exchange (its client left): the connector's `stopped` resolves,
        // and its writes fail.
        let (mut send, recv) = edge.open_exchange().await.unwrap();
        send.finish().unwrap();
        let (mut s, _r) = bounded(connector.accept_exchange()).await.unwrap().unwrap();
        let stopped = s.stopped();
        drop((send, recv));
        bounded(stopped)
            .await
            .expect("stopped() resolves when the edge drops the exchange");
        let mut failed = false;
        for _ in 0..100 {
            if s.write_all(b"more").await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writes to an abandoned exchange fail");

        // The edge stops reading with a code: the connector's write sees it.
        let (mut send, mut recv) = edge.open_exchange().await.unwrap();
        send.finish().unwrap();
        let (mut s, _r) = bounded(connector.accept_exchange()).await.unwrap().unwrap();
        recv.stop(2);
        bounded(s.stopped()).await.unwrap();
        let err = s.write_all(b"x").await.unwrap_err();
        assert!(matches!(err, TransportError::Stopped(2)), "{err:?}");
    }

    #[tokio::test]
    async fn closing_either_end_ends_the_tunnel_for_both() {
        let (edge, connector, _dir) = pair().await;
        let _ = tokio::join!(connector.open_exchange(), edge.accept_exchange());
        connector.close(4, b"going away");
        assert!(connector.close_reason().is_some());
        // The tunnel ends for the edge. (Open defect, WIP-tcp.md: the GOAWAY's code does not
        // always reach the edge before the socket closes; it may see "broken pipe" instead.)
        let _why = bounded(edge.closed()).await.unwrap();
        assert!(edge.open_exchange().await.is_err());

        let (edge, connector, _dir) = pair().await;
        edge.close(1, b"refused");
        bounded(connector.closed()).await.unwrap();
        assert!(bounded(connector.accept_exchange()).await.unwrap().is_err());
    }
}
