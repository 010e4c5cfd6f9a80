use super::*;

fn lists(extra: usize, page: usize) -> Lists {
    Lists {
        extra_tools: extra,
        page_size: page,
        ..Lists::default()
    }
}

fn names(page: &str) -> (Vec<String>, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(&format!("{{\"tools\":[{page}}}")).unwrap();
    let names = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    (names, v["nextCursor"].as_str().map(str::to_owned))
}

#[test]
fn default_list_is_echo_and_blob_in_one_page() {
    let (n, next) = names(&tools_page(&Lists::default(), None).unwrap());
    assert_eq!(n, ["echo", "blob"]);
    assert_eq!(next, None);
}

#[test]
fn pages_follow_the_cursor_to_every_tool_once() {
    let l = lists(5, 3);
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let (n, next) = names(&tools_page(&l, cursor.as_deref()).unwrap());
        assert!(n.len() <= 3);
        all.extend(n);
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(cursor, None);
    assert_eq!(
        all,
        [
            "echo",
            "blob",
            "tool-00001",
            "tool-00002",
            "tool-00003",
            "tool-00004",
            "tool-00005"
        ]
    );
}

#[test]
fn bad_cursors_are_refused() {
    let l = lists(5, 3);
    for c in ["", "0", "7", "99", "-1", "abc", "3.0"] {
        assert!(tools_page(&l, Some(c)).is_err(), "{c:?}");
    }
}

#[test]
fn extra_tools_are_known_by_their_listed_name_only() {
    assert!(is_extra_tool("tool-00001", 3));
    assert!(is_extra_tool("tool-00003", 3));
    assert!(!is_extra_tool("tool-00004", 3));
    assert!(!is_extra_tool("tool-00000", 3));
    assert!(!is_extra_tool("tool-1", 3));
    assert!(!is_extra_tool("tool-00001", 0));
}

#[test]
fn cache_fields_only_in_the_modern_era_and_only_when_asked() {
    let mut l = Lists::default();
    assert_eq!(cache_fields(&l, true), "");
    l.ttl_ms = Some(5000);
    assert_eq!(cache_fields(&l, false), "");
    assert_eq!(
        cache_fields(&l, true),
        ",\"ttlMs\":5000,\"cacheScope\":\"private\""
    );
    l.scope = Scope::Public;
    assert_eq!(
        cache_fields(&l, true),
        ",\"ttlMs\":5000,\"cacheScope\":\"public\""
    );
}

#[test]
fn stats_count_known_methods_and_lump_the_rest() {
    let s = Served::default();
    s.count("tools/list");
    s.count("tools/list");
    s.count("x/unknown");
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(v, serde_json::json!({"tools/list": 2, "other": 1}));
}

#[test]
fn the_readme_resource_and_the_hello_prompt() {
    let p = |name: Option<&str>, uri: Option<&str>| Params {
        name: name.map(str::to_owned),
        uri: uri.map(str::to_owned),
        ..Params::default()
    };
    let v = extras("resources/read", &p(None, Some("echo://readme"))).unwrap();
    assert_eq!(v["contents"][0]["text"], "echo backend readme");
    assert_eq!(
        extras("resources/read", &p(None, Some("echo://other")))
            .unwrap_err()
            .0,
        -32002
    );
    assert_eq!(
        extras("resources/read", &p(None, None)).unwrap_err().0,
        -32002
    );
    let v = extras("prompts/get", &p(Some("hello"), None)).unwrap();
    assert_eq!(v["messages"][0]["content"]["text"], "hello");
    assert_eq!(
        extras("prompts/get", &p(Some("bye"), None)).unwrap_err().0,
        -32602
    );
    let v = extras("resources/list", &p(None, None)).unwrap();
    assert_eq!(v["resources"][0]["uri"], "echo://readme");
    assert_eq!(
        extras("prompts/list", &p(None, None)).unwrap()["prompts"][0]["name"],
        "hello"
    );
}

#[test]
fn modern_only_refuses_initialize_and_other_eras_with_32022() {
    use serde_json::json;
    let id = json!(7);
    // A legacy client's first request: `initialize` asking for 2025-11-25.
    let r = modern_only_refusal(Some(&id), "initialize", None, Some("2025-11-25")).unwrap();
    assert_eq!(r["id"], json!(7));
    assert_eq!(r["error"]["code"], json!(-32022));
    assert_eq!(
        r["error"]["data"],
        json!({"supported": ["2026-07-28"], "requested": "2025-11-25"})
    );
    // `initialize` is refused even under the 2026-07-28 header: that era has none.
    let r = modern_only_refusal(Some(&id), "initialize", Some("2026-07-28"), None).unwrap();
    assert_eq!(r["error"]["data"]["requested"], json!("2026-07-28"));
    // Any other request needs the 2026-07-28 header, exactly.
    for (header, requested) in [
        (None, json!(null)),
        (Some("2025-11-25"), json!("2025-11-25")),
        (Some("2026-07-29"), json!("2026-07-29")),
        (Some(" 2026-07-28"), json!(" 2026-07-28")),
    ] {
        let r = modern_only_refusal(None, "tools/list", header, None).unwrap();
        assert_eq!(r["id"], json!(null), "{header:?}");
        assert_eq!(r["error"]["code"], json!(-32022), "{header:?}");
        assert_eq!(r["error"]["data"]["requested"], requested, "{header:?}");
        assert_eq!(r["error"]["data"]["supported"], json!(["2026-07-28"]));
    }
    for method in ["server/discover", "tools/list", "tools/call", "ping"] {
        assert_eq!(
            modern_only_refusal(Some(&id), method, Some("2026-07-28"), None),
            None,
            "{method}"
        );
    }
}

#[test]
fn discover_lists_both_eras_by_default_and_only_2026_when_modern_only() {
    let v = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap();
    assert_eq!(
        v(supported_versions(false)),
        serde_json::json!(["2026-07-28", "2025-11-25"])
    );
    assert_eq!(
        v(supported_versions(true)),
        serde_json::json!(["2026-07-28"])
    );
}
