use serde_json::json;
use serde_json::value::RawValue;

use super::*;

fn listing(kind: Kind, items: Vec<Value>) -> Listing {
    let items: Vec<Split> = items
        .iter()
        .filter_map(|i| Split::of(kind, &serde_json::value::to_raw_value(i).unwrap()))
        .collect();
    let names = match kind {
        Kind::Tools | Kind::Prompts => {
            let listed = items.iter().map(|i| i.original.as_str());
            NameTable::build("svc", "__", listed).0
        }
        _ => NameTable::default(),
    };
    prepare(kind, "svc", items, names)
}

/// The rendered items, read back as JSON (each must be valid on its own).
fn parsed(out: Vec<String>) -> Vec<Value> {
    out.iter()
        .map(|t| serde_json::from_str(t).expect("each item is JSON"))
        .collect()
}

#[test]
fn items_are_renamed_filtered_and_chosen_by_the_view() {
    let tools = listing(
        Kind::Tools,
        vec![
            json!({"name": "echo", "description": "d"}),
            json!({"name": "secret"}),
            json!({"name": "dup"}),
            json!({"name": "dup"}),
            json!({"name": "bad\u{7}"}),
            json!({"noname": 1}),
        ],
    );
    let visible = |t: &Target<'_>| *t != Target::Tool("secret");
    let out = parsed(federate(Kind::Tools, &tools, None, false, visible));
    assert_eq!(out, vec![json!({"name": "svc__echo", "description": "d"})]);

    let view: ViewConfig = toml::from_str(
        r#"name = "v"
           tools = ["svc__echo"]
           aliases = { say = "svc__echo" }
           descriptions = { say = "Says it" }"#,
    )
    .expect("view");
    let out = parsed(federate(Kind::Tools, &tools, Some(&view), false, |_| true));
    assert_eq!(out, vec![json!({"name": "say", "description": "Says it"})]);
}

#[test]
fn a_bridged_service_keeps_its_own_names_but_not_bad_ones() {
    let tools = listing(
        Kind::Tools,
        vec![json!({"name": "echo"}), json!({"name": "bad\u{7}"})],
    );
    let out = parsed(federate(Kind::Tools, &tools, None, true, |_| true));
    assert_eq!(out, vec![json!({"name": "echo"})]);
    let res = listing(Kind::Resources, vec![json!({"uri": "demo://r"})]);
    let out = parsed(federate(Kind::Resources, &res, None, true, |_| true));
    assert_eq!(out, vec![json!({"uri": "demo://r"})]);
}

#[test]
fn resource_uris_are_federated_and_bad_ones_dropped() {
    let long = format!("x://{}", "a".repeat(MAX_URI));
    let res = listing(
        Kind::Resources,
        vec![
            json!({"uri": "demo://readme", "name": "readme"}),
            json!({"uri": "demo://bad\nline"}),
            json!({"uri": long}),
        ],
    );
    let out = parsed(federate(Kind::Resources, &res, None, false, |_| true));
    assert_eq!(
        out,
        vec![json!({"uri": "underpass://svc/demo://readme", "name": "readme"})]
    );
    let templates = listing(
        Kind::Templates,
        vec![json!({"uriTemplate": "demo://t/{id}"})],
    );
    let out = parsed(federate(Kind::Templates, &templates, None, false, |_| true));
    assert_eq!(
        out,
        vec![json!({"uriTemplate": "underpass://svc/demo://t/{id}"})]
    );
}

#[test]
fn pages_cover_every_item_once() {
    let items: Vec<Value> = (0..7).map(Value::from).collect();
    let (first, next) = page(items.clone(), 0, 3);
    assert_eq!(first, vec![json!(0), json!(1), json!(2)]);
    assert_eq!(next, Some(3));
    let (second, next) = page(items.clone(), 3, 3);
    assert_eq!(second.len(), 3);
    assert_eq!(next, Some(6));
    let (last, next2) = page(items.clone(), 6, 3);
    assert_eq!(last, vec![json!(6)]);
    assert_eq!(next2, None);
    assert_eq!(page(items.clone(), 100, 3), (Vec::new(), None));
    assert_eq!(page(items, usize::MAX, usize::MAX), (Vec::new(), None));
}

#[test]
fn contexts_differ_by_principal_groups_and_client_capabilities_not_group_order() {
    let id = |p: &str, g: &[&str]| Identity {
        principal: p.into(),
        groups: g.iter().map(|s| s.to_string()).collect(),
        method: crate::auth::AuthMethod::ApiKey,
        scopes: Vec::new(),
    };
    let none = json!({});
    assert_eq!(
        context(&id("a", &["x", "y"]), &none),
        context(&id("a", &["y", "x"]), &none)
    );
    assert_ne!(context(&id("a", &[]), &none), context(&id("b", &[]), &none));
    assert_ne!(
        context(&id("a", &["x"]), &none),
        context(&id("a", &[]), &none)
    );
    // A legacy session's lists depend on what its client may be asked.
    let sampling = json!({"sampling": {}});
    assert_ne!(
        context(&id("a", &[]), &none),
        context(&id("a", &[]), &sampling)
    );
}

#[test]
fn kept_items_keep_every_member_and_a_view_replaces_only_the_description() {
    let tools = listing(
        Kind::Tools,
        vec![
            json!({"name": "echo", "description": "d", "inputSchema": {"type": "object"},
                   "annotations": {"readOnlyHint": true}, "_meta": {"k": [1, "\u{2028}"]}}),
            json!("not an object"),
            json!({"name": 7}),
        ],
    );
    assert_eq!(
        tools.items.len(),
        1,
        "non-objects and non-string names are not kept"
    );
    let out = parsed(federate(Kind::Tools, &tools, None, false, |_| true));
    assert_eq!(
        out,
        vec![
            json!({"name": "svc__echo", "description": "d", "inputSchema": {"type": "object"},
                    "annotations": {"readOnlyHint": true}, "_meta": {"k": [1, "\u{2028}"]}})
        ]
    );
    let view: ViewConfig = toml::from_str(
        r#"name = "v"
           tools = ["svc__echo"]
           descriptions = { "svc__echo" = "Quote \" and \\ kept" }"#,
    )
    .expect("view");
    let out = parsed(federate(Kind::Tools, &tools, Some(&view), false, |_| true));
    assert_eq!(out[0]["description"], "Quote \" and \\ kept");
    assert_eq!(out[0]["inputSchema"], json!({"type": "object"}));
    // A tool with nothing but its name.
    let bare = listing(Kind::Prompts, vec![json!({"name": "p"})]);
    let out = parsed(federate(Kind::Prompts, &bare, None, false, |_| true));
    assert_eq!(out, vec![json!({"name": "svc__p"})]);
}

#[test]
fn an_answer_joins_the_items_to_the_rest_of_the_result() {
    let items = vec![r#"{"name":"a"}"#.to_owned(), r#"{"name":"b"}"#.to_owned()];
    let rest = json!({"nextCursor": "c\"1", "ttlMs": 0});
    let v: Value =
        serde_json::from_str(&answer(Some(&json!(7)), "tools", &items, &rest)).expect("JSON");
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "id": 7, "result": {
            "tools": [{"name": "a"}, {"name": "b"}], "nextCursor": "c\"1", "ttlMs": 0}})
    );
    let v: Value = serde_json::from_str(&answer(None, "prompts", &[], &json!({}))).expect("JSON");
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "id": null, "result": {"prompts": []}})
    );
}

#[test]
fn a_page_is_split_at_the_top_level_only_and_hostile_items_are_left_out() {
    let text = r#"{"tools": [
        {"name": "echo", "inputSchema": {"type": "object",
            "properties": {"m": {"type": "string", "description": "a \"quoted\" word"}}},
         "description": "first", "description": "second"},
        {"name": 7},
        "not an object",
        {"name": "a", "name": "b"},
        {"title": "no name"}
    ], "nextCursor": "c2", "ttlMs": 5000}"#;
    let raw = RawValue::from_string(text.to_owned()).unwrap();
    let page = Page::read(Kind::Tools, &raw).unwrap();
    assert_eq!(page.items.len(), 5);
    assert_eq!(page.rest, json!({"nextCursor": "c2", "ttlMs": 5000}));
    let splits: Vec<Split> = page.items.into_iter().flatten().collect();
    let names: Vec<&str> = splits.iter().map(|s| s.original.as_str()).collect();
    // A duplicated member counts once, the last (as a parsed object has it).
    assert_eq!(names, ["echo", "b"]);
    let table = NameTable::build("svc", "__", names.iter().copied()).0;
    let listing = prepare(Kind::Tools, "svc", splits, table);
    let out = parsed(federate(Kind::Tools, &listing, None, false, |_| true));
    assert_eq!(
        out[0],
        json!({"name": "svc__echo", "description": "second", "inputSchema": {"type": "object",
            "properties": {"m": {"type": "string", "description": "a \"quoted\" word"}}}})
    );
    assert_eq!(out[1], json!({"name": "svc__b"}));
}

#[test]
fn a_page_without_its_list_is_unreadable() {
    for text in [r#"{"tools": "nope"}"#, r#"{"prompts": []}"#, "[]", "7"] {
        let raw = RawValue::from_string(text.to_owned()).unwrap();
        assert!(
            matches!(
                Page::read(Kind::Tools, &raw),
                Err(UpstreamError::Unreadable(_))
            ),
            "{text}"
        );
    }
}

#[test]
fn escaped_member_names_and_values_come_out_as_the_same_json() {
    let text = r#"{"tools": [
        {"na\u006de": "e\u0063ho", "x\"y": {"k\\": "v\n"}, "a": 1, "a": 2},
        {"name": "good", "name": 7},
        {"name": "tab\tname", "description": "d\u00e9j\u00e0"}
    ]}"#;
    let raw = RawValue::from_string(text.to_owned()).unwrap();
    let page = Page::read(Kind::Tools, &raw).unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.items[1].is_none(), "the last name is not a string");
    let splits: Vec<Split> = page.items.into_iter().flatten().collect();
    assert_eq!(splits[0].original, "echo");
    let rest: Value = serde_json::from_str(&format!("{{{}}}", splits[0].rest)).unwrap();
    assert_eq!(rest, json!({"x\"y": {"k\\": "v\n"}, "a": 2}));
    let listing = prepare(
        Kind::Tools,
        "svc",
        splits,
        NameTable::build("svc", "__", ["echo"]).0,
    );
    let out = parsed(federate(Kind::Tools, &listing, None, false, |_| true));
    assert_eq!(
        out,
        [json!({"name": "svc__echo", "x\"y": {"k\\": "v\n"}, "a": 2})]
    );
}

#[test]
fn a_json_string_is_written_escaped_only_when_it_must_be() {
    for s in [
        "plain",
        "",
        "quote\"",
        "back\\slash",
        "ctl\u{1}",
        "del\u{7f}",
        "é✓",
    ] {
        let mut out = String::new();
        push_json_str(&mut out, s);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
    }
}

#[test]
fn a_page_nested_past_the_parser_limit_is_unreadable_with_the_reason() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let text = format!(r#"{{"tools": [{{"name": "a"}}], "_meta": {{"x": {deep}}}}}"#);
    let raw = RawValue::from_string(text).unwrap();
    match Page::read(Kind::Tools, &raw) {
        Err(UpstreamError::Unreadable(why)) => assert!(why.contains("recursion"), "{why}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("read a page nested 200 deep"),
    }
}
