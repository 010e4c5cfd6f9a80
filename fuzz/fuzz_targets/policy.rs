//! Policy files (`underpass_edge::policy::Policy::parse`) of any text, and every decision a
//! parsed policy makes about a few callers and targets; the glob matcher on any pattern.
//!
//! Input: `policy.toml` text [`\0` glob pattern `\0` name].
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use underpass_edge::policy::glob::{pattern_accepts, PathGlob};
use underpass_edge::policy::{glob_match, Policy, Target};
use underpass_fuzz::sections;

fuzz_target!(|data: &[u8]| {
    let parts = sections(data, b"\0");
    if let (Some(pattern), Some(name)) = (parts.get(1), parts.get(2)) {
        let pattern = String::from_utf8_lossy(pattern);
        let name = String::from_utf8_lossy(name);
        if pattern.len() <= 256 && name.len() <= 256 {
            assert_eq!(
                glob_match(&pattern, &name),
                reference_glob(&pattern, &name),
                "glob_match({pattern:?}, {name:?}) differs from the reference"
            );
        }
        assert!(glob_match("*", &name));
        let _ = pattern_accepts(&pattern, &name);
        if let Ok(g) = PathGlob::parse(&pattern) {
            let _ = g.matches(&name);
        }
    }
    let Ok(text) = std::str::from_utf8(parts[0]) else {
        return;
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    let _ = policy.rule_count();
    let callers: [&[String]; 3] = [
        &["client:alice".to_owned(), "group:eng".to_owned()],
        &["apikey:ci-bot".to_owned()],
        &[],
    ];
    let args = [
        None,
        Some(json!({"path": "/srv/docs/../../etc/passwd", "mode": "r"})),
        Some(json!({"path": "/srv/docs/a.txt", "mode": ["r"]})),
    ];
    for principals in callers {
        for service in ["everything", "other", ""] {
            for target in [
                Target::Service,
                Target::Tool("echo"),
                Target::Tool("get-sum"),
                Target::Resource("file:///srv/docs/a.txt"),
                Target::Prompt("simple"),
            ] {
                let visible = policy.visible(principals, service, &target);
                for a in &args {
                    let d = policy.decide(principals, service, &target, a.as_ref());
                    assert_eq!(
                        d.to_string(),
                        policy.explain(principals, service, &target, a.as_ref())
                    );
                    if d.allowed && target != Target::Service {
                        assert!(visible, "allowed but not visible: {d}");
                    }
                }
            }
        }
    }
});

/// `*` matches any run of characters, everything else itself: by dynamic programming.
fn reference_glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // m[j]: the pattern so far matches the first j characters of the text.
    let mut m = vec![false; t.len() + 1];
    m[0] = true;
    for pc in &p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = if *pc == '*' {
                m[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && m[j - 1] && t[j - 1] == *pc
            };
        }
        m = next;
    }
    m[t.len()]
}
