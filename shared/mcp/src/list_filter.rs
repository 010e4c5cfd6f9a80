//! Hiding what a caller may not see in server-to-client messages: entries of list results
//! ([`filter_list_result`]) and notifications that name primitives ([`filter_notification`]).

use serde_json::Value;

use crate::message::Target;

/// Removes from a list response the entries `keep` rejects, and returns how many were
/// removed.
///
/// `response` is a JSON-RPC response object; the list is `result.tools` (`tools/list`,
/// keyed by `name`), `result.resources` (`resources/list`, `uri`),
/// `result.resourceTemplates` (`resources/templates/list`, `uriTemplate`, offered as a
/// [`Target::Resource`]) or `result.prompts` (`prompts/list`, `name`). An entry whose key
/// is not a string cannot be judged and is removed. Everything else (other fields,
/// `nextCursor`, `_meta`, entry order) is untouched; other methods and error responses
/// are left alone (returns 0).
pub fn filter_list_result(
    method: &str,
    response: &mut Value,
    keep: impl Fn(&Target) -> bool,
) -> usize {
    let (list, key, make): (&str, &str, fn(String) -> Target) = match method {
        "tools/list" => ("tools", "name", Target::Tool),
        "resources/list" => ("resources", "uri", Target::Resource),
        "resources/templates/list" => ("resourceTemplates", "uriTemplate", Target::Resource),
        "prompts/list" => ("prompts", "name", Target::Prompt),
        _ => return 0,
    };
    let Some(entries) = response
        .get_mut("result")
        .and_then(|r| r.get_mut(list))
        .and_then(Value::as_array_mut)
    else {
        return 0;
    };
    let before = entries.len();
    entries.retain(|entry| match entry.get(key).and_then(Value::as_str) {
        Some(k) => keep(&make(k.to_owned())),
        None => false,
    });
    before - entries.len()
}

/// What [`filter_notification`] decided about a server-to-client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationVerdict {
    /// Not about a primitive the caller may not see: forward it as it is.
    Unchanged,
    /// Entries about primitives the caller may not see were removed from it.
    Rewritten,
    /// It is about a primitive the caller may not see: do not forward it.
    Drop,
}

/// Judges a server-to-client notification that names primitives, with `keep` saying which
/// the caller may see:
///
/// * `notifications/resources/updated` (`params.uri`, 2025-11-25 and 2026-07-28): dropped
///   when the URI is not kept, or is not a string;
/// * `notifications/subscriptions/acknowledged` (2026-07-28, `params.notifications.
///   resourceSubscriptions`, the URIs a `subscriptions/listen` stream will report on): the
///   URIs not kept (and entries that are not strings) are removed.
///
/// Every other message (requests, responses, `list_changed`, progress, logging …) names
/// no primitive and is left alone.
pub fn filter_notification(msg: &mut Value, keep: impl Fn(&Target) -> bool) -> NotificationVerdict {
    let resource = |uri: &str| Target::Resource(uri.to_owned());
    if msg.get("id").is_some() {
        return NotificationVerdict::Unchanged;
    }
    match msg.get("method").and_then(Value::as_str) {
        Some("notifications/resources/updated") => {
            match msg.pointer("/params/uri").and_then(Value::as_str) {
                Some(uri) if keep(&resource(uri)) => NotificationVerdict::Unchanged,
                _ => NotificationVerdict::Drop,
            }
        }
        Some("notifications/subscriptions/acknowledged") => {
            let Some(list) = msg
                .pointer_mut("/params/notifications/resourceSubscriptions")
                .and_then(Value::as_array_mut)
            else {
                return NotificationVerdict::Unchanged;
            };
            let before = list.len();
            list.retain(|u| u.as_str().is_some_and(|u| keep(&resource(u))));
            if list.len() == before {
                NotificationVerdict::Unchanged
            } else {
                NotificationVerdict::Rewritten
            }
        }
        _ => NotificationVerdict::Unchanged,
    }
}

/// Whether a server-to-client message with this method may need [`filter_notification`].
pub fn names_primitives(method: &str) -> bool {
    matches!(
        method,
        "notifications/resources/updated" | "notifications/subscriptions/acknowledged"
    )
}

#[cfg(test)]
mod tests;
