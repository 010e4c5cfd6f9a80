//! List and notification filtering: `underpass_mcp::{filter_list_result,
//! filter_notification}` on any message, and the edge's `mcp::list_filter::ListFilter` on any
//! JSON body or SSE event data. Whatever is forwarded shows the caller no list entry and no
//! resource notification its policy hides.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use underpass_edge::mcp::judge::Call;
use underpass_edge::mcp::list_filter::ListFilter;
use underpass_edge::policy::Policy;
use underpass_edge::reload::Reloadable;
use underpass_fuzz::mode;
use underpass_mcp::{filter_list_result, filter_notification, NotificationVerdict, Target};

const POLICY: &str = r#"
[[allow]]
name = "fuzz"
principals = ["client:fuzz"]
tools = ["pub*"]
resources = ["pub*"]
prompts = ["pub*"]

[[deny]]
name = "no-secrets"
principals = ["*"]
tools = ["*secret*"]
resources = ["*secret*"]
prompts = ["*secret*"]
"#;

/// What the caller may see: the policy above, by hand.
fn visible(name: &str) -> bool {
    name.starts_with("pub") && !name.contains("secret")
}

fn keep(t: &Target) -> bool {
    match t {
        Target::Tool(n) | Target::Resource(n) | Target::Prompt(n) => visible(n),
    }
}

/// The list requests of the exchange: (id, method, list member, key).
const LISTS: [(&str, &str, &str, &str); 4] = [
    ("1", "tools/list", "tools", "name"),
    ("2", "resources/list", "resources", "uri"),
    (
        "\"3\"",
        "resources/templates/list",
        "resourceTemplates",
        "uriTemplate",
    ),
    ("4", "prompts/list", "prompts", "name"),
];

fn policy() -> Arc<Policy> {
    static POLICY_CELL: OnceLock<Arc<Policy>> = OnceLock::new();
    POLICY_CELL
        .get_or_init(|| Arc::new(Policy::parse(POLICY).expect("the fuzz policy parses")))
        .clone()
}

fn filter() -> ListFilter {
    let calls: Vec<Call> = LISTS
        .iter()
        .map(|(id, method, _, _)| Call {
            id: serde_json::from_str(id).ok(),
            method: (*method).to_owned(),
            target: None,
            targets: Vec::new(),
            arguments: None,
            is_request: true,
            obligations: Default::default(),
        })
        .collect();
    let policy = policy();
    let live = Arc::new(Reloadable::new((*policy).clone()));
    ListFilter::for_request(
        &calls,
        policy,
        live,
        || vec!["client:fuzz".to_owned()],
        "everything",
        &Default::default(),
    )
    .expect("the fuzz policy is not allow-all")
}

/// Asserts that a message as forwarded hides what the policy hides.
fn check_message(msg: &Value) {
    let id = msg.get("id");
    if let (Some(id), Some(result)) = (id, msg.get("result")) {
        for (list_id, _, member, key) in LISTS {
            if serde_json::from_str::<Value>(list_id).ok().as_ref() != Some(id) {
                continue;
            }
            if let Some(entries) = result.get(member).and_then(Value::as_array) {
                for e in entries {
                    let name = e.get(key).and_then(Value::as_str);
                    assert!(
                        name.is_some_and(visible),
                        "hidden entry forwarded in {member}: {e}"
                    );
                }
            }
        }
    }
    if id.is_none() {
        match msg.get("method").and_then(Value::as_str) {
            Some("notifications/resources/updated") => {
                let uri = msg.pointer("/params/uri").and_then(Value::as_str);
                assert!(
                    uri.is_some_and(visible),
                    "hidden resource update forwarded: {msg}"
                );
            }
            Some("notifications/subscriptions/acknowledged") => {
                if let Some(list) = msg
                    .pointer("/params/notifications/resourceSubscriptions")
                    .and_then(Value::as_array)
                {
                    for u in list {
                        assert!(
                            u.as_str().is_some_and(visible),
                            "hidden subscription forwarded: {msg}"
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn check_forwarded(bytes: &[u8]) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => items.iter().for_each(check_message),
        Ok(one) => check_message(&one),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((m, body)) = mode(data) else {
        return;
    };
    // The shared functions, with the same visibility.
    if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
        let method = LISTS[usize::from(m & 3)].1;
        let before = v.clone();
        let removed = filter_list_result(method, &mut v, keep);
        let (_, _, member, key) = LISTS[usize::from(m & 3)];
        if let Some(entries) = v
            .pointer(&format!("/result/{member}"))
            .and_then(Value::as_array)
        {
            for e in entries {
                assert!(e.get(key).and_then(Value::as_str).is_some_and(visible));
            }
        }
        assert_eq!(removed == 0, v == before);
        let mut n = before.clone();
        match filter_notification(&mut n, keep) {
            NotificationVerdict::Unchanged => assert_eq!(n, before),
            NotificationVerdict::Rewritten => assert_ne!(n, before),
            NotificationVerdict::Drop => {}
        }
    }

    // The edge's filter, on a JSON body and on one SSE event's data.
    let filter = filter();
    match filter.filter_json(body) {
        Some(rewritten) => check_forwarded(&rewritten),
        None => check_forwarded(body),
    }
    if let Ok(text) = std::str::from_utf8(body) {
        match filter.apply_text(text) {
            None => check_forwarded(body),
            Some(None) => {}
            Some(Some(rewritten)) => check_forwarded(rewritten.as_bytes()),
        }
    }
});
