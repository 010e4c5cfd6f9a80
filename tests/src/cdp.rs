//! A real headless Chromium driven over the Chrome DevTools Protocol: launched with
//! `--remote-debugging-port=0` (the port read from its stderr), one page target, and a
//! minimal blocking WebSocket client (RFC 6455: masked text frames out, fragmented and
//! control frames in), enough for `Page.navigate`, `Runtime.evaluate` and
//! `Page.captureScreenshot`. The browser is killed when [`Chromium`] drops, also when a test
//! fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

/// How long a DevTools call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The browser binary: `chromium` (Debian), or `$CHROMIUM`.
fn binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

/// A headless Chromium process with its own throwaway profile.
pub struct Chromium {
    child: Child,
    /// `127.0.0.1:PORT` of the DevTools endpoint.
    devtools: String,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts the browser and waits (at most 30 s) until its DevTools endpoint listens.
    pub fn launch() -> Chromium {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(binary())
            .args([
                "--headless=new",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                // Root in a container has no user namespaces for the sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1400,1500",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install it (tests/run.sh does: apt-get install chromium)",
                    binary()
                )
            });
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut browser = Chromium {
            child,
            devtools: String::new(),
            _profile: profile,
        };
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("Chromium did not print its DevTools address within 30 s");
        // ws://127.0.0.1:PORT/devtools/browser/ID
        browser.devtools = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("DevTools address")
            .to_owned();
        browser
    }

    /// The browser's first page, connected.
    pub fn page(&self) -> Page {
        let targets = self.list_targets();
        let ws = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target: {targets}"))
            .to_owned();
        Page {
            ws: WebSocket::connect(&ws),
            next_id: 0,
        }
    }
}

impl Chromium {
    /// `GET /json/list` (DevTools keeps the connection open: read by `Content-Length`).
    fn list_targets(&self) -> Value {
        let mut stream = TcpStream::connect(&self.devtools).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(CALL_TIMEOUT))
            .expect("timeout");
        write!(
            stream,
            "GET /json/list HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.devtools
        )
        .expect("send /json/list");
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read /json/list head");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("Content-Length");
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).expect("read /json/list body");
        serde_json::from_slice(&body).expect("/json/list is JSON")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page target.
pub struct Page {
    ws: WebSocket,
    next_id: u64,
}

impl Page {
    /// Calls `method` and returns its `result` (events that arrive meanwhile are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws
            .send_text(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let message: Value =
                serde_json::from_str(&self.ws.read_message()).expect("DevTools message is JSON");
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message["result"].clone();
            }
        }
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.enable", json!({}));
        let result = self.call("Page.navigate", json!({"url": url}));
        assert!(
            result.get("errorText").is_none(),
            "navigation to {url} failed: {result}"
        );
    }

    /// The value of `expression` in the page (by value).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    /// What the page shows as text.
    pub fn text(&mut self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A PNG of the page, written to `path` (its folder created).
    pub fn screenshot(&mut self, path: &Path) {
        let result = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(result["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artifact dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

/// A client WebSocket over plain TCP (DevTools listens on loopback without TLS).
struct WebSocket {
    stream: TcpStream,
}

impl WebSocket {
    fn connect(url: &str) -> WebSocket {
        let rest = url.strip_prefix("ws://").expect("a ws:// URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut stream = TcpStream::connect(authority).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(CALL_TIMEOUT))
            .expect("timeout");
        let key = base64::engine::general_purpose::STANDARD.encode(rand_bytes::<16>());
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("send the upgrade");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream
                .read_exact(&mut byte)
                .expect("read the upgrade answer");
            head.push(byte[0]);
            assert!(head.len() < 16 * 1024, "upgrade answer too long");
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
        WebSocket { stream }
    }

    fn send_text(&mut self, text: &str) {
        self.send_frame(0x1, text.as_bytes());
    }

    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        // Client frames are masked (RFC 6455, 5.3).
        let mask = rand_bytes::<4>();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).expect("send a frame");
    }

    /// The next whole text message (fragments joined; pings answered).
    fn read_message(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream
                .read_exact(&mut head)
                .expect("read a frame (DevTools answered nothing in time?)");
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.stream.read_exact(&mut b).expect("length");
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.stream.read_exact(&mut b).expect("length");
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            assert!(len < 256 << 20, "frame of {len} bytes");
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).expect("payload");
            match opcode {
                0x8 => panic!("DevTools closed the connection"),
                0x9 => self.send_frame(0xA, &payload),
                0xA => {}
                _ => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return String::from_utf8(message).expect("text message");
                    }
                }
            }
        }
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out)
        .expect("random bytes");
    out
}
