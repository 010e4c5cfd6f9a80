//! Attacks on the edge's client listener, over real sockets, each with its documented answer
//! (README, "Attacks and answers"): oversized and too many headers (431 on HTTP/1.1 and
//! HTTP/2), deep and wide JSON within the body limit, path tricks on service names, and
//! DNS-rebinding Origins. After each: the edge still serves a legitimate request, and its
//! descriptors and memory are back near their baseline (`underpass_tests::vitals`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use underpass_tests::http::{self, h2_request, Reply};
use underpass_tests::recorder::Recorder;
use underpass_tests::vitals::{assert_survived, peak_rss_while, rss_kib, Vitals};
use underpass_tests::*;

const ALICE: &str = "adversarial-http-alice";
const BOB: &str = "adversarial-http-bob";

/// Edge with API keys `alice` (services `rec`) and `bob` (everything), an audit log, one
/// connector serving `rec` and `secret` from two recording backends.
struct Site {
    d: Deployment,
    rec: Recorder,
    secret: Recorder,
}

const POLICY: &str = r#"
[[allow]]
principals = ["apikey:alice"]
services = ["rec"]
tools = ["*"]

[[allow]]
principals = ["apikey:bob"]
tools = ["*"]
"#;

fn site() -> Site {
    let rec = Recorder::start();
    let secret = Recorder::start();
    let extra = format!(
        "[auth]\n[[auth.api_keys]]\nname = \"alice\"\nsha256 = \"{}\"\n\
         [[auth.api_keys]]\nname = \"bob\"\nsha256 = \"{}\"\n\
         [policy]\nfile = \"policy.toml\"\n[audit]\nfile = \"audit.jsonl\"\n",
        sha256_hex(ALICE),
        sha256_hex(BOB)
    );
    let d = Deployment::start_services(
        false,
        &[("rec", &rec.url, ""), ("secret", &secret.url, "")],
        &extra,
        |dir| std::fs::write(dir.join("policy.toml"), POLICY).unwrap(),
    );
    let site = Site { d, rec, secret };
    site.serves(ALICE).unwrap();
    site
}

fn tool_call(arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "echo", "arguments": arguments}})
}

impl Site {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.d.edge_setup.client_port)
    }

    fn vitals(&self) -> Vitals {
        Vitals::of(self.d.edge.pid())
    }

    /// A legitimate call by `key` to `rec`: 200, and the backend saw it.
    fn serves(&self, key: &str) -> Result<(), String> {
        let before = self.rec.tool_calls("echo");
        let r = self.post(
            key,
            "/mcp/rec",
            &[],
            tool_call(json!({})).to_string().as_bytes(),
        );
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        if self.rec.tool_calls("echo") != before + 1 {
            return Err("the call did not reach the backend".into());
        }
        Ok(())
    }

    fn survived(&self, before: &Vitals, attack: &str) {
        assert_survived(
            before,
            attack,
            || self.serves(ALICE),
            || self.d.edge.log_text(),
        );
    }

    /// A POST over HTTP/1.1 with the usual MCP headers plus `extra` lines.
    fn post(&self, key: &str, path: &str, extra: &[String], body: &[u8]) -> Reply {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Authorization: Bearer {key}\r\nContent-Length: {}\r\n",
            self.addr(),
            body.len()
        );
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        send_and_read(&self.addr(), head.into_bytes(), body).unwrap_or_else(|e| {
            panic!(
                "no answer to POST {path}: {e}\nedge log:\n{}",
                self.d.edge.log_text()
            )
        })
    }

    /// A POST over HTTP/2 (prior knowledge) with the usual MCP headers plus `extra`.
    fn post_h2(
        &self,
        key: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let bearer = format!("Bearer {key}");
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("authorization", bearer.as_str()),
        ];
        headers.extend_from_slice(extra);
        h2_request(
            "POST",
            &format!("http://{}{path}", self.addr()),
            None,
            &headers,
            body,
        )
    }

    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.d.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn seen_total(&self) -> usize {
        self.rec.seen().len() + self.secret.seen().len()
    }
}

/// Sends `head` and `body` from another thread while reading the answer: an edge that
/// answers early (431, 413) and closes may make the rest of the write fail (broken pipe),
/// which must not hide its answer.
fn send_and_read(addr: &str, head: Vec<u8>, body: &[u8]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut bytes = head;
    bytes.extend_from_slice(body);
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    let _ = sender.join();
    http::parse(&raw)
}

#[test]
fn oversized_and_too_many_headers_get_431_on_http1_and_http2() {
    let s = site();
    let before = s.vitals();
    let seen = s.seen_total();
    let body = tool_call(json!({})).to_string();

    // HTTP/1.1: the head over http2_max_header_list_size (64 KiB), far over it (the tunnel's
    // head frame is 256 KiB), and more than 100 header fields.
    for (what, extra) in [
        (
            "a 70 KiB header",
            vec![format!("X-Big: {}", "a".repeat(70 * 1024))],
        ),
        (
            "a 300 KiB header",
            vec![format!("X-Big: {}", "a".repeat(300 * 1024))],
        ),
        (
            "101 header fields",
            (0..101).map(|i| format!("X-Many-{i}: v")).collect(),
        ),
    ] {
        let r = s.post(ALICE, "/mcp/rec", &extra, body.as_bytes());
        assert_eq!(r.status, 431, "HTTP/1.1, {what}: {}", r.text());
    }
    // Within the limits: 40 KiB in 40 headers reach the backend.
    let pad: Vec<String> = (0..40)
        .map(|i| format!("X-Pad-{i}: {}", "p".repeat(1000)))
        .collect();
    let r = s.post(ALICE, "/mcp/rec", &pad, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.rec
            .seen()
            .last()
            .unwrap()
            .header("x-pad-39")
            .map(str::len),
        Some(1000)
    );

    // HTTP/2: a header list over the limit (h2 answers 431), and more than 100 fields (the
    // edge answers 431, audited).
    let big = "a".repeat(70 * 1024);
    let r = s
        .post_h2(ALICE, "/mcp/rec", &[("x-big", &big)], body.as_bytes())
        .unwrap();
    assert_eq!(r.status, 431, "HTTP/2, a 70 KiB header: {}", r.text());
    let names: Vec<String> = (0..101).map(|i| format!("x-many-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let r = s
        .post_h2(ALICE, "/mcp/rec", &many, body.as_bytes())
        .unwrap();
    assert_eq!(r.status, 431, "HTTP/2, 101 header fields: {}", r.text());
    assert_eq!(r.json()["error"]["code"], -32600, "{}", r.text());
    // The audit writer runs behind the answer: wait for the line (bounded).
    let audited_431 = |lines: &[Value]| {
        lines
            .iter()
            .any(|l| l["http_status"] == 431 && l["outcome"] == "too_large")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut audited = s.audit_lines();
    while !audited_431(&audited) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        audited = s.audit_lines();
    }
    assert!(
        audited_431(&audited),
        "the 431 is not in the audit log: {audited:?}"
    );
    let r = s.post_h2(ALICE, "/mcp/rec", &[], body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // Only the two legitimate calls reached a backend.
    assert_eq!(s.seen_total(), seen + 2);
    s.survived(&before, "oversized and too many headers");
}

#[test]
fn deep_and_wide_json_within_the_body_limit_is_answered_and_bounded() {
    let s = site();
    let before = s.vitals();

    // Deep: nesting beyond the parser's cap of 100, a little and a lot (2 MB of brackets).
    for depth in [101, 1_000_000] {
        let args = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"a":{args}}}}}}}"#
        );
        let r = s.post(ALICE, "/mcp/rec", &[], body.as_bytes());
        assert_eq!(r.status, 400, "depth {depth}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], -32700, "{}", r.text());
        assert!(r.text().contains("nesting deeper than 100"), "{}", r.text());
    }

    // Wide batches: more than 100 messages are refused whole (one audit line, nothing
    // judged or forwarded), up to ~4 MiB of notifications included; the other principal is
    // served at once (the audit log keeps up: no gap, no 503).
    // The two deep refusals' lines first (the audit writer appends a moment after the answer),
    // so that the count below starts from a settled log.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let deep_lines = || {
        s.audit_lines()
            .iter()
            .filter(|l| l["jsonrpc_error"] == -32700)
            .count()
    };
    while deep_lines() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(deep_lines(), 2, "each deep refusal has its audit line");
    let lines_before = s.audit_lines().len();
    for n in [101usize, 90_000] {
        let msgs: Vec<String> = (0..n)
            .map(|_| r#"{"jsonrpc":"2.0","method":"notifications/x"}"#.to_owned())
            .collect();
        let body = format!("[{}]", msgs.join(","));
        assert!(body.len() < 4 << 20);
        let r = s.post(ALICE, "/mcp/rec", &[], body.as_bytes());
        assert_eq!(r.status, 400, "batch of {n}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], -32600, "{}", r.text());
        assert!(r.text().contains("at most 100"), "{}", r.text());
        s.serves(BOB).unwrap();
    }
    // Each call: a `dispatched` line before it goes down the tunnel, one with its outcome.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.audit_lines().len() < lines_before + 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let new_lines = s.audit_lines().split_off(lines_before);
    let dispatched = new_lines
        .iter()
        .filter(|l| l["outcome"] == "dispatched")
        .count();
    assert_eq!(
        (new_lines.len(), dispatched),
        (6, 2),
        "two refused batches and two calls make six audit lines, two of them dispatched: \
         {new_lines:#?}"
    );

    // Wide arguments within the limit are valid MCP: judged and forwarded. Held by the
    // backend, 16 of them at once (4 MiB of small numbers each, ~16x that parsed) must not
    // keep their parsed form: the edge's memory grows by about one parse, not sixteen.
    let n = (4 * 1024 * 1024 - 200) / 2;
    let mut wide = String::from(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hold","arguments":{"a":["#,
    );
    wide.push_str(&"0,".repeat(n - 1));
    wide.push_str("0]}}}");
    assert!(wide.len() <= 4 << 20);
    let wide = std::sync::Arc::new(wide);
    let base_rss = rss_kib(s.d.edge.pid());
    let (replies, peak) = peak_rss_while(s.d.edge.pid(), || {
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (addr, wide) = (s.addr(), wide.clone());
                std::thread::spawn(move || {
                    let head = format!(
                        "POST /mcp/rec HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                         Content-Type: application/json\r\nAccept: application/json\r\n\
                         Authorization: Bearer {ALICE}\r\nContent-Length: {}\r\n\r\n",
                        wide.len()
                    );
                    http::raw(&addr, &head, wide.as_bytes())
                })
            })
            .collect();
        s.rec.wait_held(16, Duration::from_secs(120));
        // Held: a wide call in flight does not stop the others.
        s.serves(BOB).unwrap();
        let held = rss_kib(s.d.edge.pid());
        s.rec.release();
        let replies: Vec<Reply> = calls
            .into_iter()
            .map(|c| c.join().unwrap().unwrap())
            .collect();
        (replies, held)
    });
    let (replies, held) = replies;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let grown = held.saturating_sub(base_rss) / 1024;
    eprintln!(
        "16 wide calls held: edge RSS {base_rss} KiB before, {held} KiB while held, peak {peak} KiB"
    );
    assert!(
        grown < 384,
        "16 held 4 MiB calls grew the edge by {grown} MiB ({base_rss} KiB -> {held} KiB)"
    );

    // Wide objects (many keys) likewise, and over the body limit: 413.
    let keys: Vec<String> = (0..200_000).map(|i| format!(r#""k{i}":0"#)).collect();
    let body = tool_call(json!({})).to_string().replace(
        r#""arguments":{}"#,
        &format!(r#""arguments":{{{}}}"#, keys.join(",")),
    );
    let r = s.post(ALICE, "/mcp/rec", &[], body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let over = format!(r#"{{"pad":"{}"}}"#, "x".repeat(5 << 20));
    let r = s.post(ALICE, "/mcp/rec", &[], over.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    s.survived(&before, "deep and wide JSON");
}

#[test]
fn path_tricks_on_service_names_never_reach_another_service() {
    let s = site();
    let before = s.vitals();
    let body = tool_call(json!({})).to_string();
    // Alice may use `rec` only; `secret` refuses her (403), and no spelling of a path may
    // take her anywhere else.
    let r = s.post(ALICE, "/mcp/secret", &[], body.as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    let seen = s.seen_total();

    let long = format!("/mcp/{}", "s".repeat(20_000));
    let tricks = [
        "/mcp/%2e%2e",
        "/mcp/..",
        "/mcp/../mcp/secret",
        "/mcp/rec/../secret",
        "/mcp/rec/%2e%2e/secret",
        "/mcp/rec%2f..%2fsecret",
        "/mcp/rec%2Fsse",
        "/mcp%2fsecret",
        "/mcp/%73ecret",
        "/mcp/%2573ecret",
        "/mcp/secre%74",
        "/mcp/SECRET",
        "/mcp/s%D0%B5cret",    // Cyrillic е
        "/mcp/%EF%BD%93ecret", // fullwidth ｓ
        "/mcp/secret%00",
        "/mcp/secret;rec",
        "/mcp/secret%20",
        "/mcp//secret",
        "/mcp/./secret",
        "/mcp/secret/",
        "/mcp/secret/.",
        "/mcp/rec/sse/../../secret",
        "//mcp/secret",
        "/MCP/secret",
        "/mcp/rec\\..\\secret",
        long.as_str(),
    ];
    for path in tricks {
        for (proto, r) in [
            ("HTTP/1.1", Some(s.post(ALICE, path, &[], body.as_bytes()))),
            ("HTTP/2", s.post_h2(ALICE, path, &[], body.as_bytes()).ok()),
        ] {
            // An HTTP/2 path the client library itself refuses to send is no attack.
            let Some(r) = r else { continue };
            assert!(
                [400, 404].contains(&r.status),
                "{proto} {path:.80}: {} {}",
                r.status,
                r.text()
            );
            if r.status == 404 {
                assert_eq!(r.json()["error"]["code"], -31404, "{}", r.text());
            }
        }
    }
    // Raw bytes that are not UTF-8, and a UTF-8 look-alike sent unencoded (HTTP/1.1).
    for raw_path in [&b"/mcp/s\xd0\xb5cret"[..], b"/mcp/\xff\xfe"] {
        let mut c = TcpStream::connect(s.addr()).unwrap();
        let mut req = b"POST ".to_vec();
        req.extend_from_slice(raw_path);
        req.extend_from_slice(
            format!(
                " HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n\
                 Accept: application/json\r\nAuthorization: Bearer {ALICE}\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                s.addr(),
                body.len()
            )
            .as_bytes(),
        );
        c.write_all(&req).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        let r = http::parse(&raw).unwrap();
        assert!([400, 404].contains(&r.status), "{raw_path:?}: {}", r.status);
    }
    assert_eq!(s.seen_total(), seen, "a trick reached a backend");
    assert!(!s.d.edge.log_text().contains("panicked"));
    s.survived(&before, "path tricks");
}

#[test]
fn dns_rebinding_origins_are_refused_in_every_spelling() {
    let s = site();
    let before = s.vitals();
    let port = s.d.edge_setup.client_port;
    let body = tool_call(json!({})).to_string();
    let seen = s.seen_total();

    let own = format!("http://127.0.0.1:{port}");
    let refused = [
        "null".to_owned(),
        String::new(),
        "http://127.0.0.1".to_owned(),
        format!("http://127.0.0.1:{}", port + 1),
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:0{port}"),
        format!("ftp://127.0.0.1:{port}"),
        format!("{own}/"),
        format!("{own}@evil.example"),
        format!("http://evil.example#@127.0.0.1:{port}"),
        format!("http://evil.example:{port}"),
        "file://".to_owned(),
    ];
    for origin in &refused {
        let r = s.post(
            ALICE,
            "/mcp/rec",
            &[format!("Origin: {origin}")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 403, "Origin {origin:?}: {}", r.text());
        let r = s
            .post_h2(ALICE, "/mcp/rec", &[("origin", origin)], body.as_bytes())
            .unwrap();
        assert_eq!(r.status, 403, "HTTP/2 Origin {origin:?}: {}", r.text());
    }
    // Two Origins, the edge's own first: malformed, refused whichever comes first.
    for pair in [
        [own.clone(), "http://evil.example".to_owned()],
        ["http://evil.example".to_owned(), own.clone()],
    ] {
        let extra: Vec<String> = pair.iter().map(|o| format!("Origin: {o}")).collect();
        let r = s.post(ALICE, "/mcp/rec", &extra, body.as_bytes());
        assert!([400, 403].contains(&r.status), "{pair:?}: {}", r.text());
        assert_ne!(r.status, 200);
    }
    let extra = [
        format!("Origin: {own}"),
        "Origin: http://evil.example".into(),
    ];
    assert_eq!(
        s.post(ALICE, "/mcp/rec", &extra, body.as_bytes()).status,
        400
    );
    assert_eq!(s.seen_total(), seen, "a refused Origin reached a backend");

    // The edge's own origin, in either scheme and any letter case, is served.
    for origin in [
        own.clone(),
        format!("https://127.0.0.1:{port}"),
        format!("HTTP://127.0.0.1:{port}"),
    ] {
        let r = s.post(
            ALICE,
            "/mcp/rec",
            &[format!("Origin: {origin}")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "Origin {origin:?}: {}", r.text());
    }
    s.survived(&before, "DNS-rebinding Origins");
}
