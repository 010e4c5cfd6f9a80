//! Resource URIs on the federated endpoint: `underpass://{prefix}/{original}`, the backend's
//! URI kept verbatim after the first `/` of the path, so it maps back exactly ([`original_uri`])
//! and two services' equal URIs stay apart. The specification leaves a gateway's URIs to it;
//! this form is a valid URI for any original (what follows the authority is a path that may
//! hold `:` and `//`), and readable in a client's display.

use serde_json::Value;

/// The scheme and `//` of every federated URI.
pub const SCHEME: &str = "underpass://";

/// The federated URI (or URI template) of a backend's `uri` from the service with `prefix`.
pub fn federated_uri(prefix: &str, uri: &str) -> String {
    format!("{SCHEME}{prefix}/{uri}")
}

/// `(prefix, original)` of a federated URI; `None` for anything this endpoint did not hand out.
pub fn original_uri(federated: &str) -> Option<(&str, &str)> {
    let rest = federated.strip_prefix(SCHEME)?;
    let (prefix, original) = rest.split_once('/')?;
    (!prefix.is_empty() && !original.is_empty()).then_some((prefix, original))
}

/// Makes federated the resource URIs in a tool result's `content`: a `resource_link`'s `uri`
/// and an embedded `resource`'s `resource.uri`, so the client can read or subscribe to them
/// through the endpoint. Items of other types, and URIs that are not strings, are left alone.
pub fn federate_content(result: &mut Value, prefix: &str) {
    let Some(Value::Array(content)) = result.get_mut("content") else {
        return;
    };
    for item in content {
        let uri = match item.get("type").and_then(Value::as_str) {
            Some("resource_link") => item.get_mut("uri"),
            Some("resource") => item.get_mut("resource").and_then(|r| r.get_mut("uri")),
            _ => None,
        };
        if let Some(uri) = uri {
            if let Some(original) = uri.as_str().filter(|u| !u.is_empty()) {
                *uri = Value::from(federated_uri(prefix, original));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_uris_in_tool_results_become_federated() {
        let mut result = json!({"content": [
            {"type": "text", "text": "demo://not-a-uri-field"},
            {"type": "resource_link", "uri": "demo://a", "name": "a"},
            {"type": "resource", "resource": {"uri": "file:///b", "text": "b"}},
            {"type": "resource_link", "uri": 7},
            {"type": "resource_link", "uri": ""},
            {"type": "resource"},
        ], "structuredContent": {"uri": "demo://c"}});
        federate_content(&mut result, "svc");
        assert_eq!(result["content"][0]["text"], "demo://not-a-uri-field");
        assert_eq!(result["content"][1]["uri"], "underpass://svc/demo://a");
        assert_eq!(
            result["content"][2]["resource"]["uri"],
            "underpass://svc/file:///b"
        );
        assert_eq!(result["content"][3]["uri"], 7);
        assert_eq!(result["content"][4]["uri"], "");
        assert_eq!(result["structuredContent"]["uri"], "demo://c");
        let mut odd = json!({"content": "text"});
        federate_content(&mut odd, "svc");
        assert_eq!(odd, json!({"content": "text"}));
    }

    #[test]
    fn uris_map_back_exactly() {
        for original in [
            "demo://resource/static/document/hello.txt",
            "file:///etc/hosts",
            "https://example.com/a?b=c#d",
            "test://x/{id}",
            "urn:x:y",
        ] {
            let f = federated_uri("svc", original);
            assert_eq!(original_uri(&f), Some(("svc", original)), "{f}");
        }
        assert_eq!(
            federated_uri("everything", "demo://r"),
            "underpass://everything/demo://r"
        );
    }

    #[test]
    fn foreign_uris_are_not_ours() {
        for uri in [
            "demo://r",
            "underpass://",
            "underpass://svc",
            "underpass://svc/",
            "underpass:///x",
            "UNDERPASS://svc/x",
        ] {
            assert_eq!(original_uri(uri), None, "{uri}");
        }
    }
}
