//! Detectors and redaction (`underpass_detect`, the edge's `mcp::mediate`) on any text and any
//! answer. What is checked:
//! - a detector finds something in a text exactly when redacting it changes it;
//! - the quick look at a JSON document's raw text never says "nothing here" about a string
//!   whose decoded value holds a match (so skipping the parse never lets a secret through);
//! - the mediator on any message never panics, keeps the message's id, and leaves an answer
//!   with nothing to find as it was.
//!
//! Input: text [`\0` named pattern].
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use underpass_detect::{Detector, Detectors, Tally};
use underpass_edge::mcp::judge::Call;
use underpass_edge::mcp::mediate::{MediationLog, Mediator};
use underpass_edge::policy::{Policy, Target};
use underpass_fuzz::sections;

fn builtins() -> &'static Detectors {
    static SET: OnceLock<Detectors> = OnceLock::new();
    SET.get_or_init(|| {
        let names: Vec<String> = underpass_detect::BUILTINS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        Detectors::resolve(&names, &[]).expect("the built-in detectors")
    })
}

/// One mediator for every input (its policy compiled once), and the log it writes to.
fn mediator() -> &'static (Mediator, MediationLog) {
    static MEDIATOR: OnceLock<(Mediator, MediationLog)> = OnceLock::new();
    MEDIATOR.get_or_init(|| {
        let log = MediationLog::default();
        (make_mediator(&log), log)
    })
}

fn make_mediator(log: &MediationLog) -> Mediator {
    let policy = Policy::parse(
        "[[allow]]\nprincipals = [\"*\"]\ntools = [\"*\"]\nredact = [\"secrets\", \"email\", \"phone\", \"iban\"]\nblock = [\"iban\"]\n",
    )
    .expect("the fuzz policy");
    let obligations = policy
        .decide(&["p".to_owned()], "s", &Target::Tool("t"), None)
        .obligations;
    let call = Call {
        id: Some(json!(1)),
        method: "tools/call".into(),
        target: None,
        targets: Vec::new(),
        arguments: None,
        is_request: true,
        obligations,
    };
    Mediator::for_calls(&[call], log).expect("a mediator")
}

fn check(set: &Detectors, text: &str) {
    let found = set.first_in(text).is_some();
    let redacted = set.redact(text, &mut Tally::default());
    assert_eq!(
        found,
        redacted.is_some(),
        "find and redact disagree on {text:?}"
    );
    let raw = serde_json::to_string(&json!({ "text": text })).expect("JSON");
    if found {
        assert!(
            set.may_find_in_json(&raw),
            "the quick look missed a match in {raw:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let parts = sections(data, b"\0");
    let text = String::from_utf8_lossy(parts[0]);
    check(builtins(), &text);
    if let Some(pattern) = parts.get(1) {
        if let Ok(named) = Detector::pattern("named", &String::from_utf8_lossy(pattern)) {
            let set = Detectors::resolve(&["named".to_owned()], &[named]).expect("resolve");
            check(&set, &text);
        }
    }
    let (m, log) = mediator();
    if let Ok(mut log) = log.lock() {
        log.clear();
    }
    // The text as a tool result, and as the whole message when it parses as one.
    let mut messages = vec![json!({"jsonrpc": "2.0", "id": 1, "result": {
        "content": [{"type": "text", "text": text}], "structuredContent": {"v": text}}})];
    if let Ok(v) = serde_json::from_slice::<Value>(parts[0]) {
        messages.push(v);
    }
    for mut msg in messages {
        let before = msg.clone();
        let changed = m.apply(&mut msg);
        assert_eq!(msg.get("id"), before.get("id"), "the id changed: {before}");
        if !changed {
            assert_eq!(msg, before, "changed but said it did not");
        }
    }
});
