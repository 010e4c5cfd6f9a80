//! A real headless Chromium driven over the Chrome DevTools Protocol: launched with
//! `--remote-debugging-port=0` (the port read from its stderr), one page target, and its
//! DevTools WebSocket (`tungstenite`) for `Page.navigate`, `Runtime.evaluate` and
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

/// The DevTools WebSocket (`tungstenite`, over plain TCP: DevTools listens on loopback).
struct WebSocket {
    socket: tungstenite::WebSocket<TcpStream>,
}

impl WebSocket {
    fn connect(url: &str) -> WebSocket {
        let rest = url.strip_prefix("ws://").expect("a ws:// URL");
        let authority = rest.split('/').next().unwrap_or(rest);
        let stream = TcpStream::connect(authority).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(CALL_TIMEOUT))
            .expect("timeout");
        let (socket, _) = tungstenite::client(url, stream).expect("WebSocket upgrade");
        WebSocket { socket }
    }

    fn send_text(&mut self, text: &str) {
        self.socket
            .send(tungstenite::Message::text(text))
            .expect("send a message");
    }

    /// The next text message (pings are answered by the library).
    fn read_message(&mut self) -> String {
        loop {
            match self
                .socket
                .read()
                .expect("read a message (DevTools answered nothing in time?)")
            {
                tungstenite::Message::Text(text) => return text.as_str().to_owned(),
                tungstenite::Message::Close(_) => panic!("DevTools closed the connection"),
                _ => {}
            }
        }
    }
}
