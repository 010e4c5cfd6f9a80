//! What a `server/discover` answer teaches the edge: the protocol versions a service's backend
//! supports (checked against later stateless-era requests, see `admission`).

/// `result.supportedVersions` of a `server/discover` response (JSON or SSE body).
pub fn discovered_versions(raw: &[u8], is_sse: bool) -> Option<Vec<String>> {
    let messages: Vec<serde_json::Value> = if is_sse {
        let mut parser = underpass_mcp::SseParser::default();
        let mut events = parser.feed(raw).ok()?;
        events.extend(parser.feed(b"\n\n").ok()?); // dispatch an unterminated last event
        events
            .iter()
            .filter_map(|e| serde_json::from_str(e.data()?).ok())
            .collect()
    } else {
        vec![serde_json::from_slice(raw).ok()?]
    };
    messages.iter().find_map(|m| {
        let list = m.get("result")?.get("supportedVersions")?.as_array()?;
        Some(
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_discover_answers() {
        let json = br#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28","2025-11-25"]}}"#;
        let want = Some(vec!["2026-07-28".to_owned(), "2025-11-25".to_owned()]);
        assert_eq!(discovered_versions(json, false), want);
        let sse = b"id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{\"supportedVersions\":[\"2026-07-28\",\"2025-11-25\"]}}\n\n";
        assert_eq!(discovered_versions(sse, true), want);
        let unterminated = b": keep-alive\n\ndata: {\"id\":1,\"result\":{\"supportedVersions\":[\"2026-07-28\",\"2025-11-25\"]}}";
        assert_eq!(discovered_versions(unterminated, true), want);
        assert_eq!(discovered_versions(b"not json", false), None);
    }
}
