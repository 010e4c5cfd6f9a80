use super::*;

fn set(names: &[&str]) -> Detectors {
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    Detectors::resolve(&names, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn redacted(d: &Detectors, text: &str) -> (Option<String>, Vec<(String, u64)>) {
    let mut tally = Tally::default();
    let out = d.redact(text, &mut tally);
    (out, tally.iter().map(|(n, c)| (n.to_owned(), c)).collect())
}

const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END RSA PRIVATE KEY-----";

#[test]
fn every_builtin_compiles() {
    for name in BUILTINS {
        assert!(Detector::builtin(name).is_some(), "{name}");
    }
    assert!(Detector::builtin("nothing").is_none());
}

#[test]
fn secrets_of_every_kind_are_found_and_words_are_not() {
    let d = set(&["secrets"]);
    let found = [
        PEM,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----",
        "key AKIAIOSFODNN7EXAMPLE here",
        "ASIAY34FZKBOKMUTVV7A",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "glpat-xxxxxxxxxxxx1234xxxx",
        "xoxb-2634-1234567890-abcdefghij",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "sk-proj-abcdefghijklmnop1234567890",
        "sk-ant-api03-abcdefghijklmnopqrst0123",
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        "hf_abcdefghijklmnopqrstuvwxyz01234567",
        "DefaultEndpointsProtocol=https;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;",
    ];
    for text in found {
        assert!(d.first_in(text).is_some(), "not found: {text}");
    }
    let clean = [
        "sk-learn-compatible-estimators-framework",
        "the AKIA prefix alone",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOC",
        "-----BEGIN CERTIFICATE-----",
        "eyJhbGciOi is only half a token",
        "a plain sentence about tokens and keys",
    ];
    for text in clean {
        assert_eq!(d.first_in(text), None, "found in: {text}");
    }
}

#[test]
fn a_private_key_is_redacted_whole_and_the_rest_kept() {
    let d = set(&["secrets"]);
    let text = format!("before\n{PEM}\nafter");
    let (out, tally) = redacted(&d, &text);
    assert_eq!(out.as_deref(), Some("before\n[REDACTED:secrets]\nafter"));
    assert_eq!(tally, vec![("secrets".to_owned(), 1)]);
    // A key cut short is redacted to the end of the text.
    let (out, _) = redacted(&d, "x -----BEGIN EC PRIVATE KEY-----\nMHcCAQEE");
    assert_eq!(out.as_deref(), Some("x [REDACTED:secrets]"));
}

#[test]
fn personal_data_is_found_with_its_checks() {
    let email = set(&["email"]);
    let (out, tally) = redacted(&email, "mail alice.smith+tag@example.co.uk or bob@corp.io.");
    assert_eq!(
        out.as_deref(),
        Some("mail [REDACTED:email] or [REDACTED:email].")
    );
    assert_eq!(tally, vec![("email".to_owned(), 2)]);
    assert_eq!(email.first_in("user@localhost and a@b"), None);

    let phone = set(&["phone"]);
    for text in [
        "+1 415 555 2671",
        "+44 (20) 7946 0958",
        "+4930123456",
        "(415) 555-2671",
        "415.555.2671",
    ] {
        assert!(phone.first_in(text).is_some(), "not found: {text}");
    }
    for text in ["2026-11-30", "order 12345678", "version 1.2.3", "+12"] {
        assert_eq!(phone.first_in(text), None, "found in: {text}");
    }

    let iban = set(&["iban"]);
    for text in [
        "DE89370400440532013000",
        "pay to GB82 WEST 1234 5698 7654 32 today",
        "FR14 2004 1010 0505 0001 3M02 606",
    ] {
        assert!(iban.first_in(text).is_some(), "not found: {text}");
    }
    // A wrong check digit, and a code that only looks like one.
    assert_eq!(iban.first_in("DE88370400440532013000"), None);
    assert_eq!(iban.first_in("AB12 CDEF GHIJ KLMN"), None);
    // Groups after the IBAN are not part of it.
    let (out, _) = redacted(&iban, "GB82 WEST 1234 5698 7654 32 ABCD");
    assert_eq!(out.as_deref(), Some("[REDACTED:iban] ABCD"));
}

#[test]
fn clean_text_is_left_alone_and_counts_add_up_per_detector() {
    let d = set(&["secrets", "email"]);
    assert_eq!(redacted(&d, "nothing to see").0, None);
    let (out, tally) = redacted(
        &d,
        "a@example.com AKIAIOSFODNN7EXAMPLE b@example.com AKIAIOSFODNN7EXAMPL2",
    );
    assert_eq!(
        out.as_deref(),
        Some("[REDACTED:email] [REDACTED:secrets] [REDACTED:email] [REDACTED:secrets]")
    );
    assert_eq!(
        tally,
        vec![("secrets".to_owned(), 2), ("email".to_owned(), 2)]
    );
}

#[test]
fn named_patterns_are_checked_when_made() {
    let ok = Detector::pattern("employee_id", r"EMP-[0-9]{6}").unwrap_or_else(|e| panic!("{e}"));
    let d =
        Detectors::resolve(&["employee_id".to_owned()], &[ok]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.first_in("badge EMP-123456"), Some("employee_id"));

    let err = |name: &str, pattern: &str| match Detector::pattern(name, pattern) {
        Ok(_) => panic!("{name:?} = {pattern:?} should be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err("bad", "(unclosed").contains("not a valid regex"));
    assert!(err("empty", "x*").contains("matches the empty text"));
    assert!(err("Upper", "x").contains("a-z, 0-9"));
    assert!(err("secrets", "x").contains("built-in"));
    assert!(err("long", &"a".repeat(MAX_PATTERN + 1)).contains("more than"));
    // A pattern whose compiled form is huge is refused, not built.
    assert!(err("huge", r"\w{1000}{1000}").contains("not a valid regex"));

    let unknown = Detectors::resolve(&["nope".to_owned()], &[]).map(|_| ());
    assert!(matches!(unknown, Err(DetectError::Unknown { .. })));
}

#[test]
fn the_quick_look_at_json_never_misses_what_the_decoded_strings_hold() {
    let d = set(&["secrets", "email"]);
    assert!(!d.may_find_in_json(r#"{"text":"all clean\nhere"}"#));
    assert!(d.may_find_in_json(r#"{"text":"AKIAIOSFODNN7EXAMPLE"}"#));
    // An escaped character can hide a match from the raw text: such text is looked at.
    assert!(d.may_find_in_json(r#"{"text":"\u0041KIAIOSFODNN7EXAMPLE"}"#));
    assert!(d.may_find_in_json(r#"{"text":"a\/b"}"#));
    // With an operator's pattern, any escape means a closer look.
    let named = Detector::pattern("nl", r"a\nb").unwrap_or_else(|e| panic!("{e}"));
    let d = Detectors::resolve(&["nl".to_owned()], &[named]).unwrap_or_else(|e| panic!("{e}"));
    assert!(d.may_find_in_json(r#"{"text":"a\nb"}"#));
    assert!(!d.may_find_in_json(r#"{"text":"ab"}"#));
    assert!(!Detectors::default().may_find_in_json(r#"{"text":"AKIAIOSFODNN7EXAMPLE"}"#));
}
