use super::*;
use serde_json::json;

fn p(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn policy(text: &str) -> Policy {
    match Policy::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("policy should parse: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    match Policy::parse(text) {
        Ok(_) => panic!("policy should not parse:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const EXAMPLE: &str = r#"
    [[allow]]
    name = "eng-tools"
    principals = ["client:alice", "group:eng", "apikey:ci-bot"]
    services = ["everything"]
    tools = ["echo", "get-*", "delete-temp"]
    resources = ["*"]
    rate = "120/min"

    [[allow]]
    name = "docs-reader"
    principals = ["client:alice"]
    services = ["everything"]
    tools = ["read-file"]
    arguments = [
      { pointer = "/path", pattern = "/srv/docs/*" },
      { pointer = "/mode", enum = ["r", "ro", 4, true] },
    ]

    [[allow]]
    name = "echo-anywhere"
    principals = ["jwt:*"]
    services = ["dev-*"]
    tools = ["echo"]

    [[deny]]
    name = "no-deletes"
    principals = ["*"]
    tools = ["*delete*"]

    [[deny]]
    name = "mallory-out"
    principals = ["client:mallory"]
    services = ["everything"]
"#;

#[test]
fn default_deny() {
    let pol = policy(EXAMPLE);
    let d = pol.decide(
        &p(&["client:bob"]),
        "everything",
        &Target::Tool("echo"),
        None,
    );
    assert!(!d.allowed);
    assert_eq!(d.rule, DEFAULT_DENY);
    assert_eq!(d.to_string(), "deny (default deny: no allow rule matches)");
    // The empty policy denies everything, including the service itself.
    let empty = policy("");
    assert!(
        !empty
            .decide(&p(&["client:alice"]), "x", &Target::Service, None)
            .allowed
    );
    // No principals at all: nothing matches, not even "*".
    assert!(
        !pol.decide(&[], "everything", &Target::Service, None)
            .allowed
    );
}

#[test]
fn allow_by_principal_and_group() {
    let pol = policy(EXAMPLE);
    let d = pol.decide(
        &p(&["client:alice"]),
        "everything",
        &Target::Tool("echo"),
        None,
    );
    assert!(d.allowed);
    assert_eq!(d.rule, "eng-tools");
    assert_eq!(
        d.rate,
        Some(Rate {
            per_second: 2.0,
            burst: 120
        })
    );
    assert_eq!(d.to_string(), "allow (rule \"eng-tools\")");
    // Via a group, with a tool glob.
    let bob = p(&["jwt:bob", "group:eng"]);
    assert!(
        pol.decide(&bob, "everything", &Target::Tool("get-user"), None)
            .allowed
    );
    // Principal glob: jwt:* on dev-* services.
    let d = pol.decide(&p(&["jwt:carol"]), "dev-1", &Target::Tool("echo"), None);
    assert_eq!(
        (d.allowed, d.rule.as_str(), d.rate),
        (true, "echo-anywhere", None)
    );
    assert!(
        !pol.decide(
            &p(&["jwt:carol"]),
            "everything",
            &Target::Tool("echo"),
            None
        )
        .allowed
    );
}

#[test]
fn deny_wins() {
    let pol = policy(EXAMPLE);
    let d = pol.decide(
        &p(&["client:alice"]),
        "everything",
        &Target::Tool("delete-temp"),
        None,
    );
    assert!(!d.allowed);
    assert_eq!(d.rule, "no-deletes");
    assert_eq!(d.to_string(), "deny (rule \"no-deletes\")");
    // A deny that lists tools does not block other kinds or the service.
    assert!(
        pol.decide(&p(&["client:alice"]), "everything", &Target::Service, None)
            .allowed
    );
    assert!(
        pol.decide(
            &p(&["client:alice"]),
            "everything",
            &Target::Resource("file:///delete"),
            None
        )
        .allowed
    );
}

#[test]
fn unlisted_kinds_are_not_granted() {
    let pol = policy(EXAMPLE);
    let alice = p(&["client:alice"]);
    // eng-tools lists tools and resources but not prompts.
    let d = pol.decide(&alice, "everything", &Target::Prompt("greet"), None);
    assert_eq!((d.allowed, d.rule.as_str()), (false, DEFAULT_DENY));
    assert!(
        pol.decide(&alice, "everything", &Target::Resource("file:///x"), None)
            .allowed
    );
    assert!(
        !pol.decide(&alice, "everything", &Target::Tool("set-x"), None)
            .allowed
    );
    // A rule with no kinds grants only the service's other methods.
    let pol = policy("[[allow]]\nprincipals = [\"*\"]\n");
    assert!(pol.decide(&alice, "any", &Target::Service, None).allowed);
    assert!(
        !pol.decide(&alice, "any", &Target::Tool("echo"), None)
            .allowed
    );
    assert!(
        !pol.decide(&alice, "any", &Target::Resource("r"), None)
            .allowed
    );
}

#[test]
fn targetless_deny_blocks_whole_service() {
    let pol = policy(
        r#"
        [[allow]]
        principals = ["*"]
        tools = ["*"]
        resources = ["*"]
        prompts = ["*"]
        [[deny]]
        principals = ["client:mallory"]
        services = ["secret"]
        "#,
    );
    let m = p(&["client:mallory"]);
    for target in [
        Target::Service,
        Target::Tool("echo"),
        Target::Resource("r"),
        Target::Prompt("p"),
    ] {
        let d = pol.decide(&m, "secret", &target, None);
        assert_eq!(
            (d.allowed, d.rule.as_str()),
            (false, "deny[0]"),
            "{target:?}"
        );
        assert!(!pol.visible(&m, "secret", &target));
        assert!(pol.decide(&m, "public", &target, None).allowed);
    }
    let d = pol.decide(&p(&["client:ok"]), "secret", &Target::Service, None);
    assert_eq!((d.allowed, d.rule.as_str()), (true, "allow[0]"));
}

#[test]
fn service_glob() {
    let pol = policy(
        r#"
        [[allow]]
        principals = ["group:ops"]
        services = ["prod-*", "staging"]
        tools = ["*"]
        "#,
    );
    let ops = p(&["jwt:x", "group:ops"]);
    assert!(
        pol.decide(&ops, "prod-db", &Target::Tool("q"), None)
            .allowed
    );
    assert!(pol.decide(&ops, "prod-", &Target::Tool("q"), None).allowed);
    assert!(pol.decide(&ops, "staging", &Target::Service, None).allowed);
    assert!(
        !pol.decide(&ops, "staging-2", &Target::Service, None)
            .allowed
    );
    assert!(!pol.decide(&ops, "Prod-db", &Target::Service, None).allowed);
}

#[test]
fn argument_constraints() {
    let pol = policy(EXAMPLE);
    let alice = p(&["client:alice"]);
    let tool = Target::Tool("read-file");
    let ok = |args: Value| pol.decide(&alice, "everything", &tool, Some(&args)).allowed;
    // pattern and enum both pass
    assert!(ok(json!({"path": "/srv/docs/a.txt", "mode": "ro"})));
    assert!(ok(json!({"path": "/srv/docs/", "mode": 4})));
    assert!(ok(json!({"path": "/srv/docs/x", "mode": 4.0})));
    assert!(ok(json!({"path": "/srv/docs/x", "mode": true})));
    // pattern fails
    assert!(!ok(json!({"path": "/etc/passwd", "mode": "r"})));
    // enum fails, including type mismatches
    assert!(!ok(json!({"path": "/srv/docs/a", "mode": "rw"})));
    assert!(!ok(json!({"path": "/srv/docs/a", "mode": "4"})));
    assert!(!ok(json!({"path": "/srv/docs/a", "mode": false})));
    assert!(!ok(json!({"path": "/srv/docs/a", "mode": ["r"]})));
    // pattern on a non-string
    assert!(!ok(json!({"path": 7, "mode": "r"})));
    // missing values / no arguments at all
    assert!(!ok(json!({"path": "/srv/docs/a"})));
    assert!(!ok(json!({})));
    assert!(!pol.decide(&alice, "everything", &tool, None).allowed);
    // constraints apply only to tools: resources are unaffected
    assert!(
        pol.decide(&alice, "everything", &Target::Resource("x"), None)
            .allowed
    );
    // a failing rule lets a later rule allow
    let pol = policy(
        r#"
        [[allow]]
        name = "strict"
        principals = ["*"]
        tools = ["run"]
        arguments = [{ pointer = "/a~1b/0", enum = ["yes"] }]
        [[allow]]
        name = "fallback"
        principals = ["group:admin"]
        tools = ["run"]
        "#,
    );
    let args = json!({"a/b": ["yes"]});
    let d = pol.decide(&alice, "s", &Target::Tool("run"), Some(&args));
    assert_eq!(d.rule, "strict");
    let admin = p(&["client:root", "group:admin"]);
    let d = pol.decide(&admin, "s", &Target::Tool("run"), Some(&json!({})));
    assert_eq!((d.allowed, d.rule.as_str()), (true, "fallback"));
    assert!(
        !pol.decide(&alice, "s", &Target::Tool("run"), Some(&json!({})))
            .allowed
    );
}

#[test]
fn visible_filters_lists() {
    let pol = policy(EXAMPLE);
    let alice = p(&["client:alice"]);
    // Allowed only with arguments, but visible regardless of them.
    assert!(pol.visible(&alice, "everything", &Target::Tool("read-file")));
    assert!(pol.visible(&alice, "everything", &Target::Tool("get-x")));
    assert!(!pol.visible(&alice, "everything", &Target::Tool("delete-temp")));
    assert!(!pol.visible(&alice, "everything", &Target::Tool("other")));
    assert!(!pol.visible(&alice, "everything", &Target::Prompt("p")));
    assert!(!pol.visible(&alice, "elsewhere", &Target::Tool("echo")));
    assert!(!pol.visible(&p(&["client:mallory"]), "everything", &Target::Service));
}

#[test]
fn allow_all_policy() {
    let pol = Policy::allow_all();
    assert!(pol.is_allow_all());
    let d = pol.decide(&[], "x", &Target::Tool("rm-rf"), None);
    assert_eq!(
        (d.allowed, d.rule.as_str(), d.rate),
        (true, ALLOW_ALL, None)
    );
    assert!(pol.visible(&[], "x", &Target::Prompt("p")));
    assert!(pol
        .explain(&[], "x", &Target::Service, None)
        .starts_with("allow"));
}

#[test]
fn rate_parsing() {
    let r = |s: &str| Rate::parse(s);
    assert_eq!(
        r("120/min"),
        Ok(Rate {
            per_second: 2.0,
            burst: 120
        })
    );
    assert_eq!(
        r("120/m"),
        Ok(Rate {
            per_second: 2.0,
            burst: 120
        })
    );
    assert_eq!(
        r("5/s"),
        Ok(Rate {
            per_second: 5.0,
            burst: 5
        })
    );
    assert_eq!(
        r("5/sec"),
        Ok(Rate {
            per_second: 5.0,
            burst: 5
        })
    );
    assert_eq!(
        r("3600/h"),
        Ok(Rate {
            per_second: 1.0,
            burst: 3600
        })
    );
    assert_eq!(
        r(" 36 / hour "),
        Ok(Rate {
            per_second: 0.01,
            burst: 36
        })
    );
    assert_eq!(
        "1/s".parse::<Rate>(),
        Ok(Rate {
            per_second: 1.0,
            burst: 1
        })
    );
    assert_eq!(r("0/min"), Err(RateError::Count));
    assert_eq!(r("-1/min"), Err(RateError::Count));
    assert_eq!(r("+1/min"), Err(RateError::Count));
    assert_eq!(r("1.5/min"), Err(RateError::Count));
    assert_eq!(r("99999999999/s"), Err(RateError::Count));
    assert_eq!(r("10/day"), Err(RateError::Unit("day".into())));
    assert_eq!(r("10/MIN"), Err(RateError::Unit("MIN".into())));
    assert_eq!(r("10"), Err(RateError::Format));
    assert_eq!(r("/min"), Err(RateError::Format));
    assert_eq!(r("10/"), Err(RateError::Format));
    assert_eq!(r(""), Err(RateError::Format));
    let e = parse_err("[[allow]]\nname = \"x\"\nprincipals = [\"*\"]\nrate = \"0/min\"\n");
    assert!(e.contains("allow[0] \"x\"") && e.contains("0/min"), "{e}");
}

#[test]
fn service_methods_belong_to_service_only_rules() {
    let pol = policy(
        r#"
        [[allow]]
        name = "slow-tool"
        principals = ["apikey:bot"]
        tools = ["a"]
        rate = "2/min"
        [[allow]]
        name = "base"
        principals = ["apikey:bot"]
        rate = "10/s"
        "#,
    );
    let bot = p(&["apikey:bot"]);
    let d = pol.decide(&bot, "s", &Target::Service, None);
    assert_eq!((d.allowed, d.rule.as_str()), (true, "base"));
    assert_eq!(d.rate.map(|r| r.burst), Some(10));
    let d = pol.decide(&bot, "s", &Target::Tool("a"), None);
    assert_eq!(
        (d.rule.as_str(), d.rate.map(|r| r.burst)),
        ("slow-tool", Some(2))
    );
    // Without a service-only rule, the first covering rule lets the service's methods
    // through, but its rate binds only the tools it grants.
    let pol = policy(
        "[[allow]]\nname = \"slow-tool\"\nprincipals = [\"*\"]\ntools = [\"a\"]\nrate = \"2/min\"\n",
    );
    let d = pol.decide(&bot, "s", &Target::Service, None);
    assert_eq!(
        (d.allowed, d.rule.as_str(), d.rate),
        (true, "slow-tool", None)
    );
    assert!(pol
        .decide(&bot, "s", &Target::Tool("a"), None)
        .rate
        .is_some());
}

#[test]
fn path_and_pattern_constraints_refuse_traversal() {
    let pol = policy(
        r#"
        [[allow]]
        name = "glob"
        principals = ["*"]
        tools = ["g"]
        arguments = [{ pointer = "/path", pattern = "/srv/docs/*" }]
        [[allow]]
        name = "path"
        principals = ["*"]
        tools = ["p"]
        arguments = [{ pointer = "/path", path = "/srv/docs/**" }]
        "#,
    );
    let who = p(&["client:x"]);
    let ok = |tool: &str, path: Value| {
        pol.decide(
            &who,
            "s",
            &Target::Tool(tool),
            Some(&json!({ "path": path })),
        )
        .allowed
    };
    for tool in ["g", "p"] {
        assert!(ok(tool, json!("/srv/docs/a.txt")), "{tool}");
        for bad in [
            "/srv/docs/../../etc/passwd",
            "/srv/docs/%2e%2e/x",
            "/srv/docs/a\u{0}",
            "/srv/docs/..\\x",
        ] {
            assert!(!ok(tool, json!(bad)), "{tool} {bad:?}");
        }
        assert!(!ok(tool, json!(["/srv/docs/a"])), "{tool}: not a string");
    }
    assert!(ok("p", json!("/srv/docs/a/b")));
    assert!(ok("p", json!("/srv//docs/./a")));
    assert!(!ok("p", json!("/srv/docs/a/../b")));
}

#[test]
fn parse_errors() {
    let e = parse_err("[[allow]]\nprincipals = [\"*\"]\ntool = [\"echo\"]\n");
    assert!(e.contains("unknown field `tool`"), "{e}");
    let e = parse_err("[[deny]]\nprincipals = [\"*\"]\nrate = \"1/s\"\n");
    assert!(e.contains("unknown field `rate`"), "{e}");
    let e = parse_err("[policy]\n");
    assert!(e.contains("unknown field `policy`"), "{e}");
    let e = parse_err("[[allow]]\nprincipals = []\n");
    assert!(
        e.contains("allow[0]") && e.contains("`principals` must not be empty"),
        "{e}"
    );
    let e = parse_err("[[allow]]\nservices = [\"x\"]\n");
    assert!(e.contains("principals"), "{e}");
    let e = parse_err("[[deny]]\nprincipals = [\"*\"]\ntools = []\n");
    assert!(
        e.contains("deny[0]") && e.contains("`tools` must not be empty"),
        "{e}"
    );
    let e = parse_err(
        "[[allow]]\nname = \"a\"\nprincipals = [\"*\"]\n[[deny]]\nname = \"a\"\nprincipals = [\"*\"]\n",
    );
    assert!(e.contains("duplicate rule name \"a\""), "{e}");
    assert!(
        e.contains("allow[0] \"a\"") && e.contains("deny[0] \"a\""),
        "{e}"
    );
    // a name may not collide with a default name either
    let e = parse_err(
        "[[allow]]\nprincipals = [\"*\"]\n[[allow]]\nname = \"allow[0]\"\nprincipals = [\"*\"]\n",
    );
    assert!(e.contains("duplicate rule name"), "{e}");
    let e = parse_err("[[allow]]\nname = \"default deny\"\nprincipals = [\"*\"]\n");
    assert!(e.contains("reserved"), "{e}");
    let e = parse_err("[[allow]]\nname = \"\"\nprincipals = [\"*\"]\n");
    assert!(e.contains("must not be empty"), "{e}");
}

#[test]
fn constraint_errors() {
    let rule =
        |c: &str| format!("[[allow]]\nprincipals = [\"*\"]\ntools = [\"*\"]\narguments = [{c}]\n");
    let e = parse_err(&rule(r#"{ pointer = "path", pattern = "*" }"#));
    assert!(
        e.contains("arguments[0]") && e.contains("must start with \"/\""),
        "{e}"
    );
    let e = parse_err(&rule(r#"{ pointer = "", pattern = "*" }"#));
    assert!(e.contains("must start with"), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a~2", pattern = "*" }"#));
    assert!(e.contains("~"), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a", pattern = "*", enum = ["x"] }"#));
    assert!(e.contains("only one of"), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a", pattern = "*", path = "/x" }"#));
    assert!(e.contains("only one of"), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a", path = "/srv/../etc" }"#));
    assert!(e.contains("arguments[0]") && e.contains(".."), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a", path = "/srv/x**" }"#));
    assert!(e.contains("whole segment"), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a" }"#));
    assert!(e.contains("one of"), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a", enum = [] }"#));
    assert!(e.contains("must not be empty"), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a", enum = [["x"]] }"#));
    assert!(e.contains("strings, numbers or booleans"), "{e}");
    let e = parse_err(&rule(r#"{ pointer = "/a", regex = "x" }"#));
    assert!(e.contains("unknown field `regex`"), "{e}");
}

#[test]
fn load_reports_path() {
    let missing = Path::new("/nonexistent/underpass/policy.toml");
    let e = Policy::load(missing).map(|_| ()).map_err(|e| e.to_string());
    assert!(
        matches!(&e, Err(m) if m.contains("/nonexistent/underpass/policy.toml")),
        "{e:?}"
    );
}

#[test]
fn obligations_come_with_the_allow_rule_that_decided() {
    let pol = policy(
        r#"
        [[allow]]
        name = "mediated"
        principals = ["group:ext"]
        tools = ["*"]
        redact = ["secrets", "email", "badge"]
        block = ["secrets"]
        [[allow]]
        name = "plain"
        principals = ["group:eng"]
        tools = ["*"]
        [detectors]
        badge = "EMP-[0-9]{6}"
        "#,
    );
    let ext = pol.decide(&p(&["group:ext"]), "s", &Target::Tool("t"), None);
    assert_eq!(
        ext.to_string(),
        r#"allow (rule "mediated"; redact secrets, email, badge; block secrets)"#
    );
    let eng = pol.decide(&p(&["group:eng"]), "s", &Target::Tool("t"), None);
    assert!(eng.obligations.is_empty());
    assert_eq!(eng.to_string(), r#"allow (rule "plain")"#);
}

#[test]
fn bad_detectors_are_refused_at_load_naming_the_rule() {
    let rule = |keys: &str| {
        format!("[[allow]]\nname = \"r\"\nprincipals = [\"*\"]\ntools = [\"*\"]\n{keys}\n")
    };
    let e = parse_err(&rule(r#"redact = ["ssn"]"#));
    assert!(
        e.contains(r#"allow[0] "r""#) && e.contains("no detector named \"ssn\""),
        "{e}"
    );
    let e = parse_err(&rule("block = []"));
    assert!(e.contains("`block` must not be empty"), "{e}");
    let e = parse_err(&format!("{}[detectors]\nbad = \"(open\"\n", rule("")));
    assert!(
        e.contains("[detectors]") && e.contains("not a valid regex"),
        "{e}"
    );
    let e = parse_err(&format!("{}[detectors]\nemail = \"x\"\n", rule("")));
    assert!(e.contains("built-in"), "{e}");
    let many: String = (0..65).map(|i| format!("d{i} = \"x{i}\"\n")).collect();
    let e = parse_err(&format!("{}[detectors]\n{many}", rule("")));
    assert!(e.contains("at most 64"), "{e}");
    let e = parse_err("[[deny]]\nprincipals = [\"*\"]\nredact = [\"email\"]\n");
    assert!(e.contains("unknown field `redact`"), "{e}");
}
