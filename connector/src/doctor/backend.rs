//! Backend checks: an HTTP backend answers (any HTTP status is an answer: the doctor checks
//! the path, not the server's opinion of a bare GET), a stdio program exists and is executable
//! (never started: it may have side effects).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::probe::PROBE_TIMEOUT;
use crate::config::{BackendConfig, ServiceConfig};
use crate::http_client::GetError;
use underpass_shared::doctor::Check;

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
            http_check(name, url, reach, &service.name, "url").await
        }
        BackendConfig::Openapi(config) => match crate::backends::openapi::check(config) {
            Err(e) => Check::fail(
                name,
                format!("{e:#}"),
                format!(
                    "fix the OpenAPI document, or `spec`, `include`/`exclude` or `auth` of service {:?}",
                    service.name
                ),
            ),
            Ok(tools) => {
                let mut check =
                    http_check(name, &config.base_url, reach, &service.name, "base_url").await;
                check.detail = format!("{tools}; {}", check.detail);
                check
            }
        },
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

/// Whether the HTTP server at `url` (the service's `key`) is reached as far as `reach`.
async fn http_check(
    name: String,
    url: &http::Uri,
    reach: Reach,
    service: &str,
    key: &str,
) -> Check {
    let probe = async {
        match reach {
            Reach::Answer => http_status(url).await.map(Some),
            Reach::Connect => crate::http_client::connect(url).await.map(|_| None),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(Some(status))) => Check::pass(name, format!("{url} answers (HTTP {status})")),
        Ok(Ok(None)) => Check::pass(name, format!("{url} accepts connections")),
        Ok(Err(GetError::Connect(e))) => Check::fail(
            name,
            format!("cannot connect to {url}: {e}"),
            format!("start the backend, or fix `{key}` of service {service:?}"),
        ),
        Ok(Err(GetError::NotHttp(e))) => Check::fail(
            name,
            format!("{url} is reachable but does not answer HTTP: {e}"),
            format!(
                "is `{key}` of service {service:?} the {}?",
                if key == "url" {
                    "MCP server"
                } else {
                    "REST API"
                }
            ),
        ),
        Err(_) => Check::fail(
            name,
            format!("no answer from {url} within {PROBE_TIMEOUT:?}"),
            "check that the backend runs and is not overloaded",
        ),
    }
}

/// A GET's status (its body, maybe an event stream, is not read).
pub(super) async fn http_status(url: &http::Uri) -> Result<u16, GetError> {
    crate::http_client::get_once(
        url,
        "application/json, text/event-stream",
        "underpass-connector-doctor",
    )
    .await
    .map(|answer| answer.status().as_u16())
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
