use super::*;

fn parse(services: &str) -> anyhow::Result<ConnectorConfig> {
    let file: ConnectorFile = toml::from_str(&format!(
        "name = \"dc1\"\nedges = [\"127.0.0.1:7844\"]\ncert = \"pki/dc1.crt\"\nkey = \"pki/dc1.key\"\nca = \"pki/ca.crt\"\n{services}"
    ))?;
    file.validate(Path::new("/etc/up"))
}

fn backend(c: &ConnectorConfig, name: &str) -> BackendConfig {
    c.service(name).expect("the service").backend.clone()
}

fn sessions(c: &ConnectorConfig, name: &str) -> SessionLimits {
    backend(c, name).sessions().expect("session limits").clone()
}

#[test]
fn http_service() {
    let c =
        parse("[[services]]\nname = \"everything\"\nurl = \"http://127.0.0.1:3001/mcp\"").unwrap();
    assert_eq!(c.cert, Path::new("/etc/up/pki/dc1.crt"));
    assert!(c.service("everything").is_some());
    assert!(c.service("other").is_none());
    assert_eq!(backend(&c, "everything").kind(), BackendKind::Http);
}

#[test]
fn limits_default_to_a_fair_share() {
    let c = parse("[[services]]\nname = \"files\"\ncommand = [\"srv\"]").unwrap();
    let l = sessions(&c, "files");
    assert_eq!(l, SessionLimits::default());
    assert_eq!(l.max_processes, 32);
    assert_eq!(l.max_processes_per_principal, 8);
    assert_eq!(l.idle_timeout, Duration::from_secs(600));
    assert_eq!(
        c.service("files").unwrap().concurrency,
        Concurrency {
            max: 1024,
            per_principal: 256
        }
    );
    let c = parse(
        "[[services]]\nname = \"files\"\ncommand = [\"srv\"]\nmax_processes = 6\n\
         idle_timeout_secs = 30\nmax_concurrent = 2\n",
    )
    .unwrap();
    let l = sessions(&c, "files");
    assert_eq!(
        (l.max_processes, l.max_processes_per_principal),
        (6, 1),
        "a quarter, at least one"
    );
    assert_eq!(l.idle_timeout, Duration::from_secs(30));
    assert_eq!(
        c.service("files").unwrap().concurrency,
        Concurrency {
            max: 2,
            per_principal: 1
        }
    );
    let c = parse(
        "[[services]]\nname = \"old\"\nurl = \"http://h/sse\"\ntransport = \"sse\"\n\
         max_processes = 10\nmax_processes_per_principal = 10\n",
    )
    .unwrap();
    assert_eq!(sessions(&c, "old").max_processes_per_principal, 10);
    assert_eq!(c.descriptor_budget(), 1024 + 10);
}

#[test]
fn bad_limits() {
    let svc = "[[services]]\nname = \"files\"\ncommand = [\"srv\"]\n";
    for bad in [
        "max_processes = 0",
        "max_processes_per_principal = 0",
        "max_processes = 4\nmax_processes_per_principal = 5",
        "max_concurrent = 0",
        "max_concurrent = 8\nmax_concurrent_per_principal = 9",
        "max_processes = \"many\"",
        "max_sessions = 3",
    ] {
        assert!(parse(&format!("{svc}{bad}")).is_err(), "{bad}");
    }
    // Session keys on a Streamable HTTP service would silently do nothing.
    let http = "[[services]]\nname = \"h\"\nurl = \"http://h/mcp\"\n";
    let e = parse(&format!("{http}max_processes = 3")).unwrap_err();
    assert!(format!("{e:#}").contains("stdio"), "{e:#}");
    assert!(parse(&format!("{http}max_concurrent = 3")).is_ok());
    let e = parse(&format!("{http}kind = \"http\"\nidle_timeout_secs = 3")).unwrap_err();
    assert!(format!("{e:#}").contains("kind = \"stdio\""), "{e:#}");
}

#[test]
fn bad_services() {
    assert!(parse("").is_err());
    assert!(parse("[[services]]\nname = \"x\"").is_err());
    assert!(parse("[[services]]\nname = \"x\"\nurl = \"ftp://h/\"").is_err());
    assert!(parse("[[services]]\nname = \"Bad Name\"\nurl = \"http://h/\"").is_err());
}

/// The spellings from before `kind` and the `kind` spellings give the same backends.
#[test]
fn kinds_and_their_older_spellings_agree() {
    let pairs = [
        (
            "url = \"http://h/mcp\"",
            "kind = \"http\"\nurl = \"http://h/mcp\"",
        ),
        (
            "url = \"http://h/mcp\"\ntransport = \"streamable-http\"",
            "kind = \"http\"\nurl = \"http://h/mcp\"\ntransport = \"streamable-http\"",
        ),
        (
            "url = \"http://h/sse\"\ntransport = \"sse\"\nmax_processes = 5",
            "kind = \"sse\"\nurl = \"http://h/sse\"\nmax_processes = 5",
        ),
        (
            "command = [\"srv\", \"-v\"]\nenv = { A = \"1\" }\ncwd = \"work\"\nidle_timeout_secs = 0",
            "kind = \"stdio\"\ncommand = [\"srv\", \"-v\"]\nenv = { A = \"1\" }\ncwd = \"work\"\nidle_timeout_secs = 0",
        ),
    ];
    for (old, new) in pairs {
        let entry = |keys: &str| format!("[[services]]\nname = \"s\"\n{keys}\n");
        let old_c = parse(&entry(old)).unwrap_or_else(|e| panic!("{old}: {e:#}"));
        let new_c = parse(&entry(new)).unwrap_or_else(|e| panic!("{new}: {e:#}"));
        assert_eq!(
            format!("{:?}", old_c.services),
            format!("{:?}", new_c.services),
            "{old} / {new}"
        );
    }
    let c =
        parse("[[services]]\nname = \"s\"\nkind = \"stdio\"\ncommand = [\"srv\"]\ncwd = \"work\"")
            .unwrap();
    match backend(&c, "s") {
        BackendConfig::Stdio { cwd, .. } => {
            assert_eq!(cwd.as_deref(), Some(Path::new("/etc/up/work")))
        }
        other => panic!("{other:?}"),
    }
    // The old leniency stays for old files: `env` beside a `url` was ignored, and still is.
    let c =
        parse("[[services]]\nname = \"s\"\nurl = \"http://h/mcp\"\nenv = { A = \"1\" }").unwrap();
    assert_eq!(backend(&c, "s").kind(), BackendKind::Http);
}

#[test]
fn contradictory_entries_are_refused_by_name() {
    for (keys, needle) in [
        (
            "kind = \"stdio\"\ncommand = [\"srv\"]\nurl = \"http://h/mcp\"",
            "`url`",
        ),
        (
            "kind = \"stdio\"\ncommand = [\"srv\"]\ntransport = \"sse\"",
            "`transport`",
        ),
        (
            "kind = \"http\"\nurl = \"http://h/mcp\"\ncommand = [\"srv\"]",
            "`command`",
        ),
        (
            "kind = \"sse\"\nurl = \"http://h/sse\"\nenv = { A = \"1\" }",
            "`env`",
        ),
        (
            "kind = \"http\"\nurl = \"http://h/mcp\"\ncwd = \"/srv\"",
            "`cwd`",
        ),
        (
            "kind = \"http\"\nurl = \"http://h/mcp\"\ntransport = \"sse\"",
            "transport",
        ),
        (
            "kind = \"sse\"\nurl = \"http://h/sse\"\ntransport = \"streamable-http\"",
            "transport",
        ),
        ("kind = \"sse\"", "needs a url"),
        ("kind = \"stdio\"", "needs a `command`"),
        ("kind = \"stdio\"\ncommand = []", "program"),
    ] {
        let e = parse(&format!("[[services]]\nname = \"s\"\n{keys}\n")).expect_err(keys);
        let msg = format!("{e:#}");
        assert!(
            msg.contains(needle) && msg.contains("\"s\""),
            "{keys}: {msg}"
        );
    }
    // Not a kind this build knows (yet).
    let e = parse("[[services]]\nname = \"s\"\nkind = \"openapi\"\n").unwrap_err();
    assert!(format!("{e:#}").contains("openapi"), "{e:#}");
}

#[test]
fn descriptor_budget_counts_pipes_and_connections() {
    let c = parse(
        "[[services]]\nname = \"h\"\nurl = \"http://h/mcp\"\nmax_concurrent = 10\n\
         [[services]]\nname = \"s\"\nkind = \"sse\"\nurl = \"http://h/sse\"\nmax_processes = 4\nmax_concurrent = 10\n\
         [[services]]\nname = \"p\"\ncommand = [\"srv\"]\nmax_processes = 4\nmax_concurrent = 10\n",
    )
    .unwrap();
    assert_eq!(c.descriptor_budget(), 10 + (10 + 4) + (10 + 4 * 3));
}

#[test]
fn tunnel_transport_defaults_to_auto_and_names_its_choices() {
    let svc = "[[services]]\nname = \"s\"\nurl = \"http://127.0.0.1:1/mcp\"";
    assert_eq!(parse(svc).unwrap().transport, TunnelTransport::Auto);
    for (word, want) in [
        ("auto", TunnelTransport::Auto),
        ("quic", TunnelTransport::Quic),
        ("tcp", TunnelTransport::Tcp),
    ] {
        let c = parse(&format!("transport = \"{word}\"\n{svc}")).unwrap();
        assert_eq!(c.transport, want);
    }
    let err = parse(&format!("transport = \"udp\"\n{svc}")).unwrap_err();
    assert!(err.to_string().contains("udp"), "{err}");
}

#[test]
fn tunnels_per_edge_defaults_to_two_and_is_bounded() {
    let with = |line: &str| {
        let file: ConnectorFile = toml::from_str(&format!(
            "name = \"dc1\"\nedges = [\"edge.example:7844\"]\ncert = \"c\"\nkey = \"k\"\nca = \"a\"\n{line}\n[[services]]\nname = \"s\"\nurl = \"http://127.0.0.1:1/mcp\"\n"
        ))?;
        file.validate(Path::new("/etc/up"))
    };
    assert_eq!(with("").unwrap().tunnels_per_edge, 2);
    assert_eq!(with("tunnels_per_edge = 1").unwrap().tunnels_per_edge, 1);
    assert_eq!(with("tunnels_per_edge = 16").unwrap().tunnels_per_edge, 16);
    for bad in ["0", "17", "100000"] {
        let err = with(&format!("tunnels_per_edge = {bad}")).unwrap_err();
        assert!(
            format!("{err:#}").contains("tunnels_per_edge"),
            "{bad}: {err:#}"
        );
    }
    assert!(with("tunnels_per_edge = -1").is_err());
}

#[test]
fn revocation_list_is_optional_and_relative_to_the_file() {
    let svc = "[[services]]\nname = \"s\"\nurl = \"http://127.0.0.1:1/mcp\"";
    assert_eq!(parse(svc).unwrap().revocation_list, None);
    let c = parse(&format!("revocation_list = \"pki/revoked.txt\"\n{svc}")).unwrap();
    assert_eq!(
        c.revocation_list.as_deref(),
        Some(Path::new("/etc/up/pki/revoked.txt"))
    );
    let c = parse(&format!("revocation_list = \"/var/revoked.txt\"\n{svc}")).unwrap();
    assert_eq!(
        c.revocation_list.as_deref(),
        Some(Path::new("/var/revoked.txt"))
    );
}

#[test]
fn the_health_listener_is_loopback_only() {
    let svc = "[[services]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n";
    let c = parse(&format!("{svc}[health]\nlisten = \"127.0.0.1:9091\"")).unwrap();
    assert_eq!(
        c.health.map(|h| h.listen),
        Some("127.0.0.1:9091".parse().unwrap())
    );
    assert!(parse(&format!("{svc}[health]\nlisten = \"[::1]:9091\"")).is_ok());
    assert!(parse(svc).unwrap().health.is_none());
    for outside in ["0.0.0.0:9091", "10.0.0.1:9091", "[::]:9091"] {
        let err = parse(&format!("{svc}[health]\nlisten = \"{outside}\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a loopback address"), "{outside}: {err}");
    }
    assert!(parse(&format!(
        "{svc}[health]\nlisten = \"127.0.0.1:9091\"\nport = 1"
    ))
    .is_err());
}

fn openapi(c: &ConnectorConfig, name: &str) -> OpenapiConfig {
    match backend(c, name) {
        BackendConfig::Openapi(o) => *o,
        other => panic!("not openapi: {other:?}"),
    }
}

#[test]
fn openapi_service() {
    let c = parse(
        "[[services]]\nname = \"billing\"\nkind = \"openapi\"\nspec = \"billing.yaml\"\n\
         base_url = \"http://billing.internal:8080/api\"\ntimeout = \"5s\"\n\
         include = { tags = [\"invoices\"] }\nexclude = { methods = [\"DELETE\"], paths = [\"/admin/*\"] }\n\
         [services.auth]\nkind = \"bearer\"\ntoken_env = \"BILLING_TOKEN\"\n",
    )
    .unwrap();
    assert_eq!(backend(&c, "billing").kind(), BackendKind::Openapi);
    let o = openapi(&c, "billing");
    assert_eq!(o.spec, SpecSource::File("/etc/up/billing.yaml".into()));
    assert_eq!(o.base_url.path(), "/api");
    assert_eq!(o.timeout, Duration::from_secs(5));
    assert_eq!(o.include.tags, ["invoices"]);
    assert!(o.exclude.matches("delete", "/x", &[]));
    assert!(o.exclude.matches("get", "/admin/users", &[]));
    assert_eq!(
        o.auth,
        Some(AuthConfig::Bearer {
            token: SecretSource::Env("BILLING_TOKEN".into())
        })
    );
    let c = parse(
        "[[services]]\nname = \"b\"\nkind = \"openapi\"\nspec = \"http://docs.internal/openapi.json\"\n\
         base_url = \"http://b:1\"\n[services.auth]\nkind = \"basic\"\nusername = \"u\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let o = openapi(&c, "b");
    assert!(matches!(o.spec, SpecSource::Url(_)));
    assert_eq!(o.timeout, DEFAULT_OPENAPI_TIMEOUT);
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "a secret is never in Debug"
    );
}

#[test]
fn openapi_keys_are_checked() {
    let svc = |rest: &str| {
        parse(&format!("[[services]]\nname = \"b\"\n{rest}"))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let full = "kind = \"openapi\"\nspec = \"s.yaml\"\nbase_url = \"http://b:1\"\n";
    assert!(svc("kind = \"openapi\"\nbase_url = \"http://b:1\"").contains("needs `spec`"));
    assert!(svc("kind = \"openapi\"\nspec = \"s.yaml\"").contains("needs `base_url`"));
    assert!(
        svc("kind = \"openapi\"\nspec = \"s.yaml\"\nbase_url = \"https://b\"").contains("http://")
    );
    assert!(svc(&format!("{full}url = \"http://x\"")).contains("takes no `url`"));
    assert!(svc(&format!("{full}max_processes = 2")).contains("keeps no sessions"));
    assert!(
        svc("kind = \"http\"\nurl = \"http://x\"\nspec = \"s.yaml\"").contains("takes no `spec`")
    );
    assert!(svc("spec = \"s.yaml\"\nbase_url = \"http://b:1\"")
        .contains("a key of kind = \"openapi\": set it"));
    assert!(svc(&format!("{full}include = {{ methods = [\"fetch\"] }}")).contains("\"fetch\""));
    assert!(svc(&format!("{full}timeout = \"0s\"")).contains("timeout"));
    assert!(svc(&format!("{full}[services.auth]\nkind = \"bearer\"")).contains("token_env"));
    assert!(svc(&format!(
        "{full}[services.auth]\nkind = \"bearer\"\ntoken = \"a\"\ntoken_env = \"B\""
    ))
    .contains("not both"));
    assert!(svc(&format!(
        "{full}[services.auth]\nkind = \"bearer\"\nusername = \"u\"\ntoken = \"t\""
    ))
    .contains("takes no `username`"));
    assert!(svc(&format!(
        "{full}[services.auth]\nkind = \"header\"\nheader = \"bad header\"\nvalue = \"v\""
    ))
    .contains("not a valid header name"));
    assert!(svc(&format!("{full}[services.auth]\nkind = \"oauth\"")).contains("oauth"));
}
