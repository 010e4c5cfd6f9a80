//! The example configs in `deploy/examples/` stay valid: both daemons load them, and the
//! example policy decides as its comments say.

use std::process::Command;

use underpass_tests::*;

/// `edge.toml` and `connector.toml` in `dir` load (`--check`).
fn configs_load(dir: &std::path::Path) {
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
        assert!(out.contains(": ok"), "{config}: {out}");
    }
}

#[test]
fn example_configs_load_and_the_example_policy_decides() {
    let dir = repo_root().join("deploy/examples");
    configs_load(&dir);
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
        // Set once: with two, the last silently wins and the other misleads its reader.
        let settings = text
            .lines()
            .filter(|l| l.starts_with("LimitNOFILE="))
            .count();
        assert_eq!(settings, 1, "{unit} sets LimitNOFILE {settings} times");
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

/// The lines of the block `key: |` in a YAML file, without their indentation (the configs the
/// Kubernetes ConfigMaps carry).
fn yaml_block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let header = lines.next().expect("the block");
    let indent = header.len() - header.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `deploy/kubernetes`: every manifest passes the Kubernetes schemas (`kubernetes-validate
/// --strict`), and the daemons' configs in its ConfigMaps load (`--check`) next to a real PKI.
#[test]
fn kubernetes_manifests_validate_and_their_configs_load() {
    let peers = Peers::get();
    let dir = repo_root().join("deploy/kubernetes");
    let manifests = ["edge.yaml", "connector.yaml"];
    let out = Command::new(peers.path("KUBERNETES_VALIDATE"))
        .arg("--strict")
        .args(manifests.iter().map(|m| dir.join(m)))
        .output()
        .expect("run kubernetes-validate");
    assert!(out.status.success(), "{}", show(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.matches("passed").count(), 8, "{said}");

    let scratch = tempfile::tempdir().unwrap();
    let pki = Pki::init(&scratch.path().join("pki"));
    pki.issue("edge", "edge");
    pki.issue("connector", "dc1");
    for (manifest, key, binary) in [
        ("edge.yaml", "edge.toml", "underpass-edge"),
        ("connector.yaml", "connector.toml", "underpass-connector"),
    ] {
        let yaml = std::fs::read_to_string(dir.join(manifest)).unwrap();
        let config = scratch.path().join(key);
        std::fs::write(&config, yaml_block(&yaml, key)).unwrap();
        if key == "edge.toml" {
            std::fs::write(
                scratch.path().join("policy.toml"),
                yaml_block(&yaml, "policy.toml"),
            )
            .unwrap();
        }
        let out = run_ok(
            Command::new(bin(binary))
                .arg("--config")
                .arg(&config)
                .arg("--check"),
        );
        assert!(out.contains(": ok"), "{manifest}: {out}");
    }
}

/// `deploy/container`: the Dockerfile builds packages of this workspace and copies binaries
/// the release build really produces; compose starts those binaries and mounts what
/// `init-pki.sh` writes, whose configs load.
#[test]
fn container_files_name_real_binaries_and_paths() {
    let dir = repo_root().join("deploy/container");
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    for package in dockerfile
        .split_whitespace()
        .skip_while(|w| *w != "--bins")
        .take_while(|w| *w != "&&")
        .filter(|w| w.starts_with("underpass-"))
    {
        let manifest = ["edge", "connector", "certs", "tests"]
            .iter()
            .map(|d| repo_root().join(d).join("Cargo.toml"))
            .find(|m| {
                std::fs::read_to_string(m)
                    .is_ok_and(|t| t.contains(&format!("name = \"{package}\"")))
            });
        assert!(
            manifest.is_some(),
            "Dockerfile builds unknown package {package}"
        );
    }
    let copied: Vec<&str> = dockerfile
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("target/release/"))
        .collect();
    assert_eq!(copied.len(), 4, "{copied:?}");
    for binary in &copied {
        assert!(bin(binary).exists(), "{binary}");
    }

    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    for started in compose
        .split(['"', ' '])
        .filter_map(|w| w.strip_prefix("/usr/local/bin/"))
    {
        assert!(
            copied.contains(&started),
            "compose starts {started}, not in the image"
        );
    }
    let state = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(dir.join("init-pki.sh"))
        .arg(state.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    for mounted in compose
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("- ./state/"))
    {
        let host = mounted.split(':').next().unwrap_or_default();
        assert!(
            state.path().join(host).exists(),
            "compose mounts ./state/{host}, not written"
        );
    }
    configs_load(state.path());
}
