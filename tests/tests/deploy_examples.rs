//! The example configs in `deploy/examples/` stay valid: both daemons load them, and the
//! example policy decides as its comments say.

use std::process::Command;

use underpass_tests::*;

#[test]
fn example_configs_load_and_the_example_policy_decides() {
    let dir = repo_root().join("deploy/examples");
    for (binary, config) in [
        ("underpass-edge", "edge.toml"),
        ("underpass-connector", "connector.toml"),
    ] {
        let out = run_ok(
            Command::new(bin(binary))
                .arg("--config")
                .arg(dir.join(config))
                .arg("--check"),
        );
        assert!(out.contains(": ok"), "{out}");
    }
    let check = |args: &[&str]| {
        run_ok(
            Command::new(bin("underpass-edge"))
                .args(["policy", "check", "--config"])
                .arg(dir.join("edge.toml"))
                .args(args),
        )
    };
    let inside = check(&[
        "--principal",
        "apikey:ci-bot",
        "--service",
        "files",
        "--tool",
        "read_file",
        "--arguments",
        r#"{"path":"/srv/docs/a.md"}"#,
    ]);
    assert!(
        inside.starts_with("allow (rule \"ci-bot-read-only\")"),
        "{inside}"
    );
    let outside = check(&[
        "--principal",
        "apikey:ci-bot",
        "--service",
        "files",
        "--tool",
        "read_file",
        "--arguments",
        r#"{"path":"/etc/passwd"}"#,
    ]);
    assert!(outside.starts_with("deny"), "{outside}");
    let traversal = check(&[
        "--principal",
        "apikey:ci-bot",
        "--service",
        "files",
        "--tool",
        "read_file",
        "--arguments",
        r#"{"path":"/srv/docs/%2e%2e/secrets"}"#,
    ]);
    assert!(traversal.starts_with("deny"), "{traversal}");
    let delete = check(&[
        "--principal",
        "client:alice",
        "--service",
        "files",
        "--tool",
        "delete_file",
    ]);
    assert!(delete.starts_with("deny (rule \"no-deletes\")"), "{delete}");

    // A broken config is refused with a reason.
    let broken = tempfile::tempdir().unwrap();
    let path = broken.path().join("edge.toml");
    std::fs::write(
        &path,
        std::fs::read_to_string(dir.join("edge.toml"))
            .unwrap()
            .replace("[policy]", "[policy]\nbogus = 1"),
    )
    .unwrap();
    let out = Command::new(bin("underpass-edge"))
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bogus"),
        "{}",
        show(&out)
    );
}

#[test]
fn systemd_units_raise_the_open_file_limit() {
    // At the default 1,024 descriptors a thousand idle connections lock everyone out.
    let dir = repo_root().join("deploy/examples");
    for unit in ["underpass-edge.service", "underpass-connector.service"] {
        let text = std::fs::read_to_string(dir.join(unit)).unwrap();
        let limit: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .unwrap_or_else(|| panic!("{unit} sets no LimitNOFILE"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{unit}: LimitNOFILE is not a number: {e}"));
        assert!(limit >= 65536, "{unit}: LimitNOFILE={limit}");
    }
}
