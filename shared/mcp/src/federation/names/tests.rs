use super::*;

#[test]
fn short_names_are_prefixed_and_split_back() {
    assert_eq!(
        federated_name("everything", "__", "echo"),
        "everything__echo"
    );
    assert_eq!(
        split("everything__echo", "__"),
        Some(("everything", "echo"))
    );
    // At the first separator: the rest may hold the separator.
    assert_eq!(split("a__b__c", "__"), Some(("a", "b__c")));
    for bad in ["echo", "__echo", "everything__", ""] {
        assert_eq!(split(bad, "__"), None, "{bad}");
    }
}

#[test]
fn long_names_are_cut_to_the_limit_with_a_stable_hash() {
    let long = "a".repeat(100);
    let f = federated_name("svc", "__", &long);
    assert_eq!(f.chars().count(), CLIENT_NAME_LIMIT);
    assert!(f.starts_with("svc__aaa"), "{f}");
    // Stable: the same on every call (and every build: FNV-1a is fixed).
    assert_eq!(f, federated_name("svc", "__", &long));
    assert_eq!(
        f,
        "svc__aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-9acf36f42442"
    );
    // Two names sharing their first 60 characters get different federated names.
    let other = format!("{}b", "a".repeat(99));
    assert_ne!(f, federated_name("svc", "__", &other));
    // Exactly at the limit: kept whole.
    let at = "b".repeat(CLIENT_NAME_LIMIT - 5);
    assert_eq!(federated_name("svc", "__", &at), format!("svc__{at}"));
    // Multi-byte characters are counted as characters and never split.
    let wide = "é".repeat(80);
    let f = federated_name("svc", "__", &wide);
    assert_eq!(f.chars().count(), CLIENT_NAME_LIMIT);
}

#[test]
fn a_table_maps_both_ways_and_reports_what_it_cut() {
    let long = "x".repeat(70);
    let (t, dropped) = NameTable::build("svc", "__", ["echo", long.as_str()]);
    assert!(dropped.is_empty());
    assert_eq!(t.len(), 2);
    assert_eq!(t.federated("echo"), Some("svc__echo"));
    assert_eq!(t.original("svc__echo"), Some("echo"));
    let cut = t.federated(&long).expect("mapped").to_owned();
    assert_eq!(t.original(&cut), Some(long.as_str()));
    assert_eq!(t.shortened(), vec![(cut.as_str(), long.as_str())]);
}

#[test]
fn bad_and_duplicate_names_are_dropped_with_a_reason() {
    let huge = "y".repeat(MAX_BACKEND_NAME + 1);
    let (t, dropped) = NameTable::build(
        "svc",
        "__",
        [
            "echo",
            "echo",
            "ok",
            "",
            "bad\u{7}name",
            "new\nline",
            huge.as_str(),
        ],
    );
    assert_eq!(t.len(), 1);
    assert_eq!(t.original("svc__ok"), Some("ok"));
    assert_eq!(
        t.federated("echo"),
        None,
        "every copy of a duplicate is dropped"
    );
    let why: Vec<&NameError> = dropped.iter().map(|d| &d.why).collect();
    assert!(why.contains(&&NameError::Duplicate));
    assert!(why.contains(&&NameError::Empty));
    assert!(why.contains(&&NameError::TooLong(MAX_BACKEND_NAME + 1)));
    assert_eq!(
        why.iter()
            .filter(|w| ***w == NameError::ControlCharacter)
            .count(),
        2
    );
    // What a log shows has no raw control character.
    assert!(dropped
        .iter()
        .all(|d| !d.shown.chars().any(char::is_control)));
    assert!(dropped
        .iter()
        .all(|d| d.shown.chars().count() <= 2 * 128 + 8));
}

#[test]
fn ten_thousand_names_build_one_table() {
    let names: Vec<String> = (0..10_000).map(|i| format!("tool-{i:05}")).collect();
    let (t, dropped) = NameTable::build("svc", "__", names.iter().map(String::as_str));
    assert!(dropped.is_empty());
    assert_eq!(t.len(), 10_000);
    assert_eq!(t.original("svc__tool-09999"), Some("tool-09999"));
}

#[test]
fn a_cut_name_that_meets_a_listed_name_of_the_limit_drops_both() {
    let long = "t".repeat(100);
    let cut = federated_name("svc", "__", &long);
    assert_eq!(cut.chars().count(), CLIENT_NAME_LIMIT);
    // A backend name whose own federated name is exactly the cut one.
    let exact = cut.strip_prefix("svc__").expect("prefixed").to_owned();
    let (t, dropped) = NameTable::build("svc", "__", [long.as_str(), exact.as_str(), "ok"]);
    let mut why: Vec<_> = dropped.iter().map(|d| d.why.clone()).collect();
    why.dedup();
    assert_eq!(why, [NameError::Collision]);
    assert_eq!(dropped.len(), 2);
    assert_eq!(t.federated(&long), None);
    assert_eq!(t.original(&cut), None);
    assert_eq!(t.original("svc__ok"), Some("ok"));
    assert!(t.shortened().is_empty());
}
