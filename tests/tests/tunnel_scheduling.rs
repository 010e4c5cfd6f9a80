//! On one tunnel, a small answer is not held up by large ones queued before it, and large
//! answers cross one after another instead of all finishing late together. Real QUIC endpoints
//! with the tunnel's own transport settings and certificates, in one process; the
//! connector side writes the way the connector does (`quic::record_write` before each write).

use std::sync::{Arc, Mutex};

use underpass_proto::identity::Role;
use underpass_tests::Pki;
use underpass_transport::quic;
use underpass_transport::tls::{self, Credentials, PeerPolicy};

const BULK_STREAMS: usize = 8;
const BULK_BYTES: usize = 2 * 1024 * 1024;
const SMALL_BYTES: usize = 100;

/// What the edge side saw: bytes received per stream, and the order streams completed in
/// with, for each completion, how many bytes the bulk streams had received by then.
#[derive(Default)]
struct Seen {
    received: Vec<usize>,
    completed: Vec<(usize, usize)>,
}

fn policy(role: Role) -> PeerPolicy {
    PeerPolicy {
        role,
        trust_domain: "underpass.local".into(),
        revoked: None,
    }
}

#[test]
fn small_answers_go_ahead_of_large_ones_and_large_ones_cross_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let (edge_cert, edge_key) = pki.issue("edge", "edge");
    let (conn_cert, conn_key) = pki.issue("connector", "dc1");
    let edge_creds = Credentials::load(&edge_cert, &edge_key, &pki.ca()).unwrap();
    let conn_creds = Credentials::load(&conn_cert, &conn_key, &pki.ca()).unwrap();
    let server = tls::tunnel_server_config(
        tls::tunnel_server_crypto(&edge_creds, policy(Role::Connector)).unwrap(),
    )
    .unwrap();
    let client = tls::tunnel_client_config(
        tls::tunnel_client_crypto(&conn_creds, policy(Role::Edge)).unwrap(),
    )
    .unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen = rt.block_on(async move {
        let edge = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
        let mut connector = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        connector.set_default_client_config(client);
        let edge_addr = edge.local_addr().unwrap();
        let dialing = connector.connect(edge_addr, "localhost").unwrap();
        let incoming = edge.accept().await.unwrap();
        let (to_edge, edge_conn) = tokio::join!(dialing, incoming);
        let (to_edge, edge_conn) = (to_edge.unwrap(), edge_conn.unwrap());

        // The edge opens one exchange per answer: stream i asks for answer i.
        let total = BULK_STREAMS + 1;
        let mut replies = Vec::new();
        for i in 0..total {
            let (mut send, recv) = edge_conn.open_bi().await.unwrap();
            send.write_all(&[i as u8]).await.unwrap();
            send.finish().unwrap();
            replies.push(recv);
        }

        // The connector takes all requests, then queues every bulk answer before the small one.
        let mut exchanges = Vec::new();
        for _ in 0..total {
            let (send, mut recv) = to_edge.accept_bi().await.unwrap();
            let ask = recv.read_to_end(1).await.unwrap();
            exchanges.push((ask[0] as usize, send));
        }
        exchanges.sort_by_key(|(i, _)| *i);
        let bulk = vec![7u8; BULK_BYTES];
        for (i, send) in &mut exchanges {
            let body = if *i < BULK_STREAMS {
                &bulk[..]
            } else {
                &bulk[..SMALL_BYTES]
            };
            quic::record_write(send, &mut quic::Demotion::default(), body.len());
            send.write_all(body).await.unwrap();
            send.finish().unwrap();
        }

        // The edge reads all answers at once and notes the order they complete in.
        let seen = Arc::new(Mutex::new(Seen {
            received: vec![0; total],
            completed: Vec::new(),
        }));
        let mut readers = tokio::task::JoinSet::new();
        for (i, mut recv) in replies.into_iter().enumerate() {
            let seen = seen.clone();
            readers.spawn(async move {
                while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.unwrap() {
                    seen.lock().unwrap().received[i] += chunk.bytes.len();
                }
                let mut s = seen.lock().unwrap();
                let bulk_received = s.received[..BULK_STREAMS].iter().sum();
                s.completed.push((i, bulk_received));
            });
        }
        while let Some(done) = readers.join_next().await {
            done.unwrap();
        }
        for (_, send) in &mut exchanges {
            let _ = send.stopped().await;
        }
        Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap()
    });

    for (i, got) in seen.received.iter().enumerate() {
        let want = if i < BULK_STREAMS {
            BULK_BYTES
        } else {
            SMALL_BYTES
        };
        assert_eq!(*got, want, "stream {i} delivered {got} bytes, not {want}");
    }
    let order: Vec<usize> = seen.completed.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        order[0], BULK_STREAMS,
        "the small answer, queued last, should complete first; completion order: {order:?}"
    );
    // When the first large answer is complete, the others have had little of the link: they
    // were not interleaved packet by packet with it.
    let (_, bulk_at_first) = seen.completed[1];
    assert!(
        bulk_at_first < BULK_BYTES + (BULK_STREAMS - 1) * BULK_BYTES / 2,
        "large answers were interleaved: {bulk_at_first} bulk bytes had arrived when the first \
         large answer completed (order {order:?})"
    );
}
