//! DNS-rebinding protection and self-referencing URLs on every protocol: the edge reads the
//! authority a client addressed from `Host` on HTTP/1.1 and from `:authority` on HTTP/2,
//! refuses foreign ones (403) and contradictory ones (400), and echoes only an authority it
//! serves, port included, in RFC 9728 metadata and `WWW-Authenticate` challenges.

use serde_json::json;
use underpass_tests::http::{self, h2_request, mcp_post};
use underpass_tests::recorder::Recorder;
use underpass_tests::vitals::{assert_survived, Vitals};
use underpass_tests::*;

const KEY: &str = "host-test-key";

fn setup() -> (Recorder, Deployment) {
    let backend = Recorder::start();
    let extra = format!(
        "[auth]\n[[auth.api_keys]]\nname = \"bot\"\nsha256 = \"{}\"\n[policy]\nallow_all = true\n",
        sha256_hex(KEY)
    );
    let d = Deployment::start_with(false, "rec", &backend.url, &extra);
    (backend, d)
}

fn ping() -> Vec<u8> {
    json!({"jsonrpc":"2.0","id":1,"method":"ping"})
        .to_string()
        .into_bytes()
}

const POST_HEADERS: [(&str, &str); 3] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
    ("authorization", "Bearer host-test-key"),
];

#[test]
fn http2_authority_is_checked_like_http1_host() {
    let (backend, d) = setup();
    let port = d.edge_setup.client_port;
    let url = d.edge_setup.url("rec");
    let own = format!("127.0.0.1:{port}");
    let vitals = Vitals::of(d.edge.pid());

    // HTTP/1.1: the edge's own Host is served, a foreign one refused (as before).
    let auth = [("Authorization", "Bearer host-test-key")];
    assert_eq!(
        mcp_post(
            &url,
            &auth,
            &json!({"jsonrpc":"2.0","id":1,"method":"ping"})
        )
        .unwrap()
        .status,
        200
    );

    // HTTP/2, the edge's own authority: served, and its own Origin is same-origin.
    let r = h2_request("POST", &url, None, &POST_HEADERS, &ping()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let origin = format!("http://{own}");
    let mut with_origin = POST_HEADERS.to_vec();
    with_origin.push(("origin", &origin));
    let r = h2_request("POST", &url, None, &with_origin, &ping()).unwrap();
    assert_eq!(r.status, 200, "own Origin over HTTP/2: {}", r.text());

    // HTTP/2 with a foreign :authority: refused before anything crosses the tunnel.
    let before = backend.seen().len();
    let evil = format!("evil.example.com:{port}");
    let r = h2_request("POST", &url, Some(&evil), &POST_HEADERS, &ping()).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("evil.example.com"), "{}", r.text());

    // :authority and Host naming different hosts: malformed (RFC 9113 §8.3.1).
    let mut two = POST_HEADERS.to_vec();
    two.push(("host", "evil.example.com"));
    let r = h2_request("POST", &url, None, &two, &ping()).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        backend.seen().len(),
        before,
        "a refused request reached the backend"
    );

    // HTTP/1.1 absolute-form target naming another host than Host: malformed too.
    let raw = http::raw(
        &own,
        &format!(
            "POST http://evil.example.com/mcp/rec HTTP/1.1\r\nHost: {own}\r\nContent-Type: application/json\r\nAccept: application/json\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            ping().len()
        ),
        &ping(),
    )
    .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text());

    assert_survived(
        &vitals,
        "forged Host and :authority",
        || {
            let r = h2_request("POST", &url, None, &POST_HEADERS, &ping())
                .map_err(|e| e.to_string())?;
            match r.status {
                200 => Ok(()),
                s => Err(format!("status {s}: {}", r.text())),
            }
        },
        || d.edge.log_text(),
    );
}

#[test]
fn protected_resource_metadata_echoes_only_served_hosts_with_their_port() {
    let (_backend, d) = setup();
    let port = d.edge_setup.client_port;
    let meta_path = "/.well-known/oauth-protected-resource/mcp/rec";
    let own = format!("localhost:{port}");
    let want = format!("http://{own}/mcp/rec");

    // HTTP/1.1 with the edge's own name: the resource keeps the port.
    let r = http::raw(
        &format!("127.0.0.1:{port}"),
        &format!("GET {meta_path} HTTP/1.1\r\nHost: {own}\r\nConnection: close\r\n\r\n"),
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["resource"], want.as_str());

    // HTTP/1.1 with a foreign Host: refused, never echoed.
    let r = http::raw(
        &format!("127.0.0.1:{port}"),
        &format!("GET {meta_path} HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n"),
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("\"resource\""), "{}", r.text());

    // HTTP/2: the port survives (:authority, no Host header).
    let url = format!("http://127.0.0.1:{port}{meta_path}");
    let r = h2_request("GET", &url, Some(&own), &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["resource"], want.as_str());
    let r = h2_request("GET", &url, Some("evil.example.com"), &[], b"").unwrap();
    assert_eq!(r.status, 403, "{}", r.text());

    // The 401 challenge over HTTP/2 points at the metadata with the port kept.
    let mcp = format!("http://127.0.0.1:{port}/mcp/rec");
    let r = h2_request("POST", &mcp, Some(&own), &POST_HEADERS[..2], &ping()).unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    let challenge = r.header("www-authenticate").expect("challenge").to_owned();
    assert!(
        challenge.contains(&format!("resource_metadata=\"http://{own}{meta_path}\"")),
        "{challenge}"
    );
}
