use serde_json::json;

use super::*;

fn service(name: &str) -> ServiceConfig {
    toml::from_str(&format!("name = \"{name}\"\nconnectors = [\"dc1\"]")).expect("service")
}

fn listing(kind: Kind, items: Vec<Value>) -> Listing {
    let names = match kind {
        Kind::Tools | Kind::Prompts => {
            let listed = items
                .iter()
                .filter_map(|i| i.get("name").and_then(Value::as_str));
            NameTable::build("svc", "__", listed).0
        }
        _ => NameTable::default(),
    };
    Listing { items, names }
}

#[test]
fn items_are_renamed_filtered_and_chosen_by_the_view() {
    let svc = service("svc");
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
    let out = federate(Kind::Tools, &tools, &svc, None, false, visible);
    assert_eq!(out, vec![json!({"name": "svc__echo", "description": "d"})]);

    let view: ViewConfig = toml::from_str(
        r#"name = "v"
           tools = ["svc__echo"]
           aliases = { say = "svc__echo" }
           descriptions = { say = "Says it" }"#,
    )
    .expect("view");
    let out = federate(Kind::Tools, &tools, &svc, Some(&view), false, |_| true);
    assert_eq!(out, vec![json!({"name": "say", "description": "Says it"})]);
}

#[test]
fn a_bridged_service_keeps_its_own_names_but_not_bad_ones() {
    let svc = service("svc");
    let tools = listing(
        Kind::Tools,
        vec![json!({"name": "echo"}), json!({"name": "bad\u{7}"})],
    );
    let out = federate(Kind::Tools, &tools, &svc, None, true, |_| true);
    assert_eq!(out, vec![json!({"name": "echo"})]);
    let res = listing(Kind::Resources, vec![json!({"uri": "demo://r"})]);
    let out = federate(Kind::Resources, &res, &svc, None, true, |_| true);
    assert_eq!(out, vec![json!({"uri": "demo://r"})]);
}

#[test]
fn resource_uris_are_federated_and_bad_ones_dropped() {
    let svc = service("svc");
    let long = format!("x://{}", "a".repeat(MAX_URI));
    let res = listing(
        Kind::Resources,
        vec![
            json!({"uri": "demo://readme", "name": "readme"}),
            json!({"uri": "demo://bad\nline"}),
            json!({"uri": long}),
        ],
    );
    let out = federate(Kind::Resources, &res, &svc, None, false, |_| true);
    assert_eq!(
        out,
        vec![json!({"uri": "underpass://svc/demo://readme", "name": "readme"})]
    );
    let templates = listing(
        Kind::Templates,
        vec![json!({"uriTemplate": "demo://t/{id}"})],
    );
    let out = federate(Kind::Templates, &templates, &svc, None, false, |_| true);
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
fn contexts_differ_by_principal_and_groups_not_their_order() {
    let id = |p: &str, g: &[&str]| Identity {
        principal: p.into(),
        groups: g.iter().map(|s| s.to_string()).collect(),
        method: crate::auth::AuthMethod::ApiKey,
        scopes: Vec::new(),
    };
    assert_eq!(
        context(&id("a", &["x", "y"])),
        context(&id("a", &["y", "x"]))
    );
    assert_ne!(context(&id("a", &[])), context(&id("b", &[])));
    assert_ne!(context(&id("a", &["x"])), context(&id("a", &[])));
}
