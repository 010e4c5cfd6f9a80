//! The admin API's mutating calls (`POST`): drain and resume a connector, end a principal's
//! sessions, reload what the edge re-reads at run time. Each logs a line naming who asked
//! (`operator:NAME`, or `loopback`) at target `underpass::admin` and, with `[audit]`, is an
//! audit record of its own (`rule` `admin`, `target` what was done), so the tamper-evident
//! trail shows who changed what the gateway does, not only the calls it served.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use underpass_audit::{AuditRecord, Decision, Outcome};

use super::{json as answer, Answer};
use crate::app::App;
use crate::certs::Certs;
use crate::policy::Policy;

/// Whether `name` is a connector the configuration grants any service to, or one online.
fn known_connector(app: &App, name: &str) -> bool {
    app.config
        .services
        .iter()
        .any(|s| s.connectors.iter().any(|c| c == name))
        || app.tunnels.tunnels().iter().any(|t| t.connector == name)
}

/// The audit record of an admin action done for `actor`: `target` names it (e.g.
/// `drain dc1`); `failed` when part of it did not take (a reload that kept a file's last good
/// value).
fn audit(app: &App, actor: &str, target: String, failed: bool) {
    let Some(auditor) = &app.auditor else {
        return;
    };
    auditor.record(AuditRecord {
        principal: Some(actor.to_owned()),
        http_method: Some("POST".into()),
        target: Some(target),
        decision: Some(Decision::Allow),
        rule: Some("admin".into()),
        outcome: if failed { Outcome::Error } else { Outcome::Ok },
        http_status: Some(200),
        request_id: Some(crate::http::ids::new_request_id()),
        ..AuditRecord::default()
    });
}

fn unknown(name: &str) -> Answer {
    answer(
        StatusCode::NOT_FOUND,
        json!({"error": format!("no connector {name:?} in [[services]] connectors and none online")}),
    )
}

/// `POST /api/connectors/{name}/drain`: its tunnels get no new requests (requests of its open
/// sessions still go there) until resumed; a tunnel it opens later is drained too.
pub fn drain(app: &App, name: &str, actor: &str) -> Answer {
    if !known_connector(app, name) {
        return unknown(name);
    }
    let tunnels = app.tunnels.drain_connector(name);
    tracing::warn!(target: "underpass::admin", actor, connector = name, tunnels, "admin: connector drained: no new requests go to it until resumed");
    audit(app, actor, format!("drain {name}"), false);
    answer(
        StatusCode::OK,
        json!({"connector": name, "drained": true, "tunnels": tunnels}),
    )
}

/// `POST /api/connectors/{name}/resume`: undoes a drain.
pub fn resume(app: &App, name: &str, actor: &str) -> Answer {
    if !known_connector(app, name) {
        return unknown(name);
    }
    let (was_drained, tunnels) = app.tunnels.resume(name);
    tracing::warn!(target: "underpass::admin", actor, connector = name, tunnels, was_drained, "admin: connector resumed");
    audit(app, actor, format!("resume {name}"), false);
    answer(
        StatusCode::OK,
        json!({"connector": name, "drained": false, "was_drained": was_drained, "tunnels": tunnels}),
    )
}

/// The body of `POST /api/sessions/end`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndSessions {
    /// Whose sessions end (as `/api/sessions` shows it, e.g. `apikey:ci`).
    principal: String,
    /// Only its sessions of this service; all of them when absent.
    service: Option<String>,
}

/// `POST /api/sessions/end` with `{"principal": P, "service": S?}`: the principal's legacy
/// sessions end here at once (their ids get 404 from now on) and at their backends (a DELETE
/// down the tunnel, in the background).
pub fn end_sessions(app: &Arc<App>, body: &[u8], actor: &str) -> Answer {
    let req: EndSessions = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("expected {{\"principal\": \"...\", \"service\": \"...\" (optional)}}: {e}")}),
            )
        }
    };
    let ended = app
        .tunnels
        .end_sessions(&req.principal, req.service.as_deref());
    let count = ended.len();
    tracing::warn!(target: "underpass::admin", actor, principal = %req.principal, service = ?req.service, sessions = count, "admin: sessions ended");
    let what = match &req.service {
        Some(service) => format!("end sessions of {} at {service}: {count}", req.principal),
        None => format!("end sessions of {}: {count}", req.principal),
    };
    audit(app, actor, what, false);
    let app = app.clone();
    tokio::spawn(async move {
        futures_util::StreamExt::for_each_concurrent(
            futures_util::stream::iter(ended),
            32,
            |session| crate::mcp::sessions::end_at_backend(&app, session),
        )
        .await;
    });
    answer(
        StatusCode::OK,
        json!({"principal": req.principal, "service": req.service, "ended": count}),
    )
}

/// `POST /api/reload`: re-reads now what the edge otherwise re-reads when a file changes or on
/// SIGHUP: the policy, the JWKS, the revocation list, every certificate and CA bundle. Each
/// failure keeps the last good value in force, as a file change would.
pub async fn reload(app: &Arc<App>, certs: Arc<Certs>, actor: &str) -> Answer {
    let work = app.clone();
    let items = tokio::task::spawn_blocking(move || reload_all(&work, &certs))
        .await
        .unwrap_or_else(|e| vec![item("reload", Err(e.to_string()))]);
    let failed = items.iter().filter(|i| i["ok"] == false).count();
    tracing::warn!(target: "underpass::admin", actor, failed, "admin: reload: {}", summary(&items));
    audit(
        app,
        actor,
        format!("reload: {}", summary(&items)),
        failed > 0,
    );
    answer(
        StatusCode::OK,
        json!({"ok": failed == 0, "failed": failed, "reloaded": items}),
    )
}

fn summary(items: &[Value]) -> String {
    items
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["component"].as_str().unwrap_or("?"),
                if i["ok"] == true { "ok" } else { "FAILED" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn item(component: &str, result: Result<String, String>) -> Value {
    match result {
        Ok(detail) => json!({"component": component, "ok": true, "detail": detail}),
        Err(error) => json!({"component": component, "ok": false, "error": error}),
    }
}

fn reload_all(app: &App, certs: &Certs) -> Vec<Value> {
    let mut items = Vec::new();
    if let Some(path) = app.config.policy.as_ref().and_then(|p| p.file.as_ref()) {
        let result = Policy::load(path).map(|policy| {
            let rules = policy.rule_count();
            app.security.policy.set(policy);
            format!("{rules} rules from {}", path.display())
        });
        if let Err(e) = &result {
            tracing::error!("policy not reloaded, keeping the previous one: {e}");
        }
        items.push(item(
            "policy",
            result.map_err(|e| format!("{e}; the previous policy stays in force")),
        ));
    }
    if app.config.auth.as_ref().is_some_and(|a| a.jwt.is_some()) {
        let result = app.security.auth.reload_jwks();
        items.push(item(
            "jwks",
            result
                .map(|n| format!("{n} keys"))
                .map_err(|e| format!("{e}; the previous keys stay in force")),
        ));
    }
    let revocations = &app.security.revocations;
    if revocations.is_configured() {
        revocations.reload_now();
        items.push(item(
            "revocation_list",
            match revocations.failure() {
                None => Ok(revocations.current().summary()),
                Some(why) => Err(why),
            },
        ));
    }
    for (component, result) in certs.reload_now(&app.config) {
        items.push(item(
            component,
            result
                .map(|()| "in force for new handshakes".to_owned())
                .map_err(|e| format!("{e}; the last good one stays in force")),
        ));
    }
    items
}
