//! The tasks extension (SEP-2663, 2026-07-28) across services: a task a backend creates is
//! known to the client by an id of the endpoint's own, which names the service and the
//! backend's task id (the edge seals it, so that only the caller it was given to can use it).
//! What the extension's messages look like, as plain functions of their input.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

/// The extension's identifier, under `capabilities.extensions`.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// The methods of the extension; each names its task by `params.taskId`.
pub const METHODS: [&str; 3] = ["tasks/get", "tasks/update", "tasks/cancel"];

/// Whether a request's `_meta` declares the extension among the client's capabilities.
pub fn declared(params: Option<&Value>) -> bool {
    params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("io.modelcontextprotocol/clientCapabilities"))
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(EXTENSION))
        .is_some_and(Value::is_object)
}

/// Whether a capabilities object declares the extension.
pub fn offered(capabilities: &Value) -> bool {
    capabilities
        .get("extensions")
        .and_then(|e| e.get(EXTENSION))
        .is_some_and(Value::is_object)
}

/// The backend's id of the task a `tools/call` result created (`resultType: "task"`).
pub fn created(result: &Value) -> Option<&str> {
    if result.get("resultType").and_then(Value::as_str) != Some("task") {
        return None;
    }
    result.get("taskId").and_then(Value::as_str)
}

/// What the endpoint's task id carries: the service and the backend's task id, as visible
/// ASCII (what a sealed value may hold): `{service}/{task id in base64url}`. Service names
/// never hold a `/`; the task id may hold anything.
pub fn join(service: &str, task_id: &str) -> String {
    format!("{service}/{}", URL_SAFE_NO_PAD.encode(task_id))
}

/// The service and the backend's task id of [`join`]'s value.
pub fn split(value: &str) -> Option<(&str, String)> {
    let (service, encoded) = value.split_once('/')?;
    let task_id = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    (!service.is_empty() && !task_id.is_empty()).then_some((service, task_id))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_request_declares_the_extension_in_its_client_capabilities() {
        let with = json!({"_meta": {"io.modelcontextprotocol/clientCapabilities":
            {"extensions": {EXTENSION: {}}}}});
        assert!(declared(Some(&with)));
        for without in [
            json!({}),
            json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}),
            json!({"_meta": {"io.modelcontextprotocol/clientCapabilities":
                {"extensions": {EXTENSION: true}}}}),
            json!({"_meta": {"io.modelcontextprotocol/clientCapabilities":
                {"extensions": {"other/ext": {}}}}}),
        ] {
            assert!(!declared(Some(&without)), "{without}");
        }
        assert!(!declared(None));
        assert!(offered(&json!({"extensions": {EXTENSION: {}}})));
        assert!(
            !offered(&json!({"tasks": {}})),
            "the v1 slot is not the extension"
        );
    }

    #[test]
    fn only_a_task_result_created_a_task() {
        let task = json!({"resultType": "task", "taskId": "t-1", "status": "working"});
        assert_eq!(created(&task), Some("t-1"));
        let done = json!({"resultType": "complete", "taskId": "t-1", "content": []});
        assert_eq!(created(&done), None);
        assert_eq!(created(&json!({"resultType": "task", "taskId": 7})), None);
    }

    #[test]
    fn the_endpoints_id_splits_back_into_service_and_task() {
        for task_id in ["task-1", "odd / id\n with ünicode"] {
            let value = join("docs", task_id);
            assert!(value.bytes().all(|b| b.is_ascii_graphic()), "{value}");
            assert_eq!(split(&value), Some(("docs", task_id.to_owned())));
        }
        assert_eq!(split("docs"), None);
        assert_eq!(split("/dGFzaw"), None);
        assert_eq!(split("docs/"), None);
        assert_eq!(split("docs/not base64"), None);
    }
}
