//! Backend checks: an HTTP backend answers (any HTTP status is an answer: the doctor checks
//! the path, not the server's opinion of a bare GET), a stdio program exists and is executable
//! (never started: it may have side effects).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::probe::PROBE_TIMEOUT;
use crate::config::{BackendConfig, ServiceConfig};
use underpass_shared::doctor::Check;

/// Most of an answer read to find its status line.
const MAX_HEAD: usize = 1024;

/// How far an HTTP backend is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A TCP connection is accepted (nothing is sent).
    Connect,
    /// A bounded GET gets an HTTP answer.
    Answer,
}

/// The row of one service's backend.
pub async fn check(service: &ServiceConfig, reach: Reach) -> Check {
    let name = format!("service {} backend", service.name);
    match &service.backend {
        BackendConfig::Http { url } | BackendConfig::Sse { url, .. } => {
            let probe = async {
                match reach {
                    Reach::Answer => http_status(url).await.map(Some),
                    Reach::Connect => connect(url).await.map(|_| None),
                }
            };
            match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                Ok(Ok(Some(status))) => Check::pass(name, format!("{url} answers (HTTP {status})")),
                Ok(Ok(None)) => Check::pass(name, format!("{url} accepts connections")),
                Ok(Err(HttpProblem::Connect(e))) => Check::fail(
                    name,
                    format!("cannot connect to {url}: {e}"),
                    format!(
                        "start the backend, or fix `url` of service {:?}",
                        service.name
                    ),
                ),
                Ok(Err(HttpProblem::NotHttp(e))) => Check::fail(
                    name,
                    format!("{url} is reachable but does not answer HTTP: {e}"),
                    format!("is `url` of service {:?} the MCP server?", service.name),
                ),
                Err(_) => Check::fail(
                    name,
                    format!("no answer from {url} within {PROBE_TIMEOUT:?}"),
                    "check that the backend runs and is not overloaded",
                ),
            }
        }
        BackendConfig::Stdio {
            command, env, cwd, ..
        } => match find_program(&command[0], env, cwd.as_deref()) {
            Ok(path) => Check::pass(
                name,
                format!("{} is executable (not started)", path.display()),
            ),
            Err(e) => Check::fail(
                name,
                e,
                format!(
                    "install the program, or fix `command` of service {:?} (a full path, or a \
                     name on PATH)",
                    service.name
                ),
            ),
        },
    }
}

#[derive(Debug)]
enum HttpProblem {
    Connect(String),
    NotHttp(String),
}

/// A TCP connection to the url's host and port.
async fn connect(url: &http::Uri) -> Result<tokio::net::TcpStream, HttpProblem> {
    let authority = url
        .authority()
        .ok_or_else(|| HttpProblem::Connect("no host in the url".into()))?;
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| HttpProblem::Connect(e.to_string()))
}

/// Connects and sends a bounded GET; the status of the answer.
async fn http_status(url: &http::Uri) -> Result<u16, HttpProblem> {
    let mut stream = connect(url).await?;
    let authority = url.authority().map_or("", |a| a.as_str());
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json, \
         text/event-stream\r\nUser-Agent: underpass-connector-doctor\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| HttpProblem::NotHttp(e.to_string()))?;
    let mut head = Vec::with_capacity(MAX_HEAD);
    let mut buf = [0u8; 256];
    while head.len() < MAX_HEAD && !head.contains(&b'\n') {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| HttpProblem::NotHttp(e.to_string()))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    status_of(&head).ok_or_else(|| {
        HttpProblem::NotHttp(if head.is_empty() {
            "it closed the connection without answering".into()
        } else {
            "the answer is not an HTTP status line".into()
        })
    })
}

/// The status code of an HTTP/1.x status line at the start of `head`.
pub fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..600).contains(c))
}

/// Where `program` is, as the stdio backend would start it: a path (relative to `cwd`), or a
/// name looked up on PATH (the service's `env` PATH if it sets one); it must be an executable
/// file.
pub fn find_program(
    program: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = match cwd {
            Some(dir) if Path::new(program).is_relative() => dir.join(program),
            _ => PathBuf::from(program),
        };
        return executable(&path).map(|()| path);
    }
    let path_var = env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let mut found_not_executable = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        match executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if candidate.exists() => found_not_executable = Some(e),
            Err(_) => {}
        }
    }
    Err(found_not_executable
        .unwrap_or_else(|| format!("program {program:?} is not found on PATH ({path_var})")))
}

fn executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not executable (chmod +x)", path.display()));
    }
    Ok(())
}
