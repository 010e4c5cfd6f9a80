//! The federated endpoint's pure parts, on what a hostile backend lists: names
//! (`underpass_mcp::federation::names::NameTable`), resource URIs (`federation::uris`), caching
//! hints (`federation::caching::directives`) and the edge's renaming of a listing
//! (`underpass_edge::federation::lists::prepare` and `federate`). Whatever a backend lists, a client is only
//! handed names of at most 64 characters under the service's prefix, that map back to exactly
//! one backend name, and URIs that map back to the backend's URI.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use underpass_edge::federation::lists::{federate, prepare, Kind, Split};
use underpass_edge::policy::Target;
use underpass_mcp::federation::caching::directives;
use underpass_mcp::federation::names::{
    check_backend_name, federated_name, split, NameTable, CLIENT_NAME_LIMIT,
};
use underpass_mcp::federation::uris::{federated_uri, original_uri};

const PREFIX: &str = "svc";
const SEP: &str = "__";

/// The items of a list page: the value itself if it is an array, else the first array among
/// the list members (at the top or under `result`), else the first array member at all.
fn items(v: &Value) -> (Kind, Vec<Value>) {
    if let Value::Array(a) = v {
        return (Kind::Tools, a.clone());
    }
    let page = v.get("result").filter(|r| r.is_object()).unwrap_or(v);
    for kind in [Kind::Tools, Kind::Prompts, Kind::Resources, Kind::Templates] {
        if let Some(Value::Array(a)) = page.get(kind.key()) {
            return (kind, a.clone());
        }
    }
    if let Some(Value::Array(a)) = page
        .as_object()
        .and_then(|o| o.values().find(|x| x.is_array()))
    {
        return (Kind::Tools, a.clone());
    }
    (Kind::Tools, Vec::new())
}

/// The invariants of a service's name table built from `names`.
fn check_names(names: &[&str]) -> NameTable {
    let (table, dropped) = NameTable::build(PREFIX, SEP, names.iter().copied());
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for n in names {
        *count.entry(n).or_default() += 1;
    }
    let mut cut = BTreeSet::new();
    let mut mapped = 0;
    for (&name, &times) in &count {
        let valid = check_backend_name(name).is_ok();
        let Some(f) = table.federated(name) else {
            // Left out: invalid, listed twice, or cut to another's federated name.
            if valid && times == 1 {
                let mine = federated_name(PREFIX, SEP, name);
                let collides = count
                    .keys()
                    .any(|o| *o != name && federated_name(PREFIX, SEP, o) == mine);
                assert!(collides, "a valid unique name was left out: {name:?}");
            }
            continue;
        };
        mapped += 1;
        assert!(valid, "an invalid name was federated: {name:?} -> {f:?}");
        assert_eq!(times, 1, "a duplicated name was federated: {name:?}");
        assert!(
            f.chars().count() <= CLIENT_NAME_LIMIT,
            "federated name over {CLIENT_NAME_LIMIT} characters: {f:?}"
        );
        assert!(
            f.starts_with("svc__"),
            "federated name without prefix: {f:?}"
        );
        assert!(
            !f.chars().any(char::is_control),
            "federated name with a control character: {f:?}"
        );
        assert_eq!(f, federated_name(PREFIX, SEP, name), "not stable: {name:?}");
        let back = table.original(f);
        assert_eq!(back, Some(name), "{f:?} does not map back to {name:?}");
        assert_eq!(table.federated(name), Some(f));
        assert!(
            matches!(split(f, SEP), Some((PREFIX, rest)) if !rest.is_empty()),
            "{f:?} does not split to the prefix"
        );
        if f != format!("{PREFIX}{SEP}{name}") {
            cut.insert((f.to_owned(), name.to_owned()));
        }
    }
    assert_eq!(
        table.len(),
        mapped,
        "the table holds names it was not given"
    );
    let shortened: BTreeSet<(String, String)> = table
        .shortened()
        .into_iter()
        .map(|(f, o)| (f.to_owned(), o.to_owned()))
        .collect();
    assert_eq!(shortened, cut, "shortened() is not exactly the cut names");
    let left_out = count.len() - mapped;
    assert!(
        dropped.len() >= left_out,
        "{left_out} names left out but {} reported",
        dropped.len()
    );
    table
}

/// The edge's renaming of the listing, with everything visible and with some names hidden.
fn check_federate(kind: Kind, items: Vec<Value>, names: NameTable) {
    let id = match kind {
        Kind::Tools | Kind::Prompts => "name",
        Kind::Resources => "uri",
        Kind::Templates => "uriTemplate",
    };
    // As the edge reads a page: each item as JSON text, split at its top level.
    let items: Vec<Split> = items
        .iter()
        .filter_map(|i| serde_json::value::to_raw_value(i).ok())
        .filter_map(|raw| Split::of(kind, &raw))
        .collect();
    let listing = prepare(kind, PREFIX, items, names);
    let parse = |out: Vec<String>| -> Vec<Value> {
        out.iter()
            .map(|t| serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}")))
            .collect()
    };
    let all = parse(federate(kind, &listing, None, false, |_| true));
    for item in &all {
        let shown = item.get(id).and_then(Value::as_str);
        let Some(shown) = shown else {
            panic!("an item without its {id} was handed out: {item}");
        };
        match kind {
            Kind::Tools | Kind::Prompts => {
                assert!(
                    listing.names.original(shown).is_some(),
                    "{shown:?} is not a federated name of the listing"
                );
                assert!(shown.starts_with("svc__") && shown.chars().count() <= CLIENT_NAME_LIMIT);
            }
            Kind::Resources | Kind::Templates => {
                let (prefix, original) = original_uri(shown)
                    .unwrap_or_else(|| panic!("{shown:?} is not a federated URI"));
                assert_eq!(prefix, PREFIX);
                assert!(!original.chars().any(char::is_control), "{shown:?}");
            }
        }
    }
    // What the caller may not see is never handed out.
    let hidden = |t: &Target<'_>| match t {
        Target::Tool(n) | Target::Prompt(n) | Target::Resource(n) => n.contains('h'),
        _ => false,
    };
    let some = parse(federate(kind, &listing, None, false, |t| !hidden(t)));
    assert!(some.len() <= all.len());
    for item in &some {
        let shown = item.get(id).and_then(Value::as_str).unwrap_or_default();
        let original = match kind {
            Kind::Tools | Kind::Prompts => listing.names.original(shown),
            Kind::Resources | Kind::Templates => original_uri(shown).map(|(_, o)| o),
        };
        if let Some(o) = original {
            assert!(!o.contains('h'), "hidden {o:?} handed out as {shown:?}");
        }
    }
}

fn check_uri(s: &str) {
    let _ = original_uri(s);
    if !s.is_empty() {
        let f = federated_uri(PREFIX, s);
        assert_eq!(original_uri(&f), Some((PREFIX, s)), "{f:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    check_uri(&String::from_utf8_lossy(data));
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for v in [Some(&value), value.get("result")].into_iter().flatten() {
        let d = directives(v);
        assert!(
            d.ttl <= Duration::from_secs(86_400),
            "ttl {:?} from {v}",
            d.ttl
        );
    }
    let (kind, items) = items(&value);
    let names: Vec<&str> = items
        .iter()
        .filter_map(|i| i.get("name").and_then(Value::as_str))
        .collect();
    let table = check_names(&names);
    for i in &items {
        for key in ["uri", "uriTemplate"] {
            if let Some(u) = i.get(key).and_then(Value::as_str) {
                check_uri(u);
            }
        }
    }
    match kind {
        Kind::Tools | Kind::Prompts => check_federate(kind, items, table),
        Kind::Resources | Kind::Templates => check_federate(kind, items, NameTable::default()),
    }
});
