//! README's first command, as a new user runs it: `deploy/quickstart.sh` brings up a zero-trust
//! setup and prints three copy-paste examples; each is run exactly as printed. The allowed call
//! answers, the denied one is a 403 naming its rule, and the audit log of both verifies.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use underpass_tests::*;

/// The quick start, stopped (with everything it started) when dropped.
struct QuickStart {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Drop for QuickStart {
    fn drop(&mut self) {
        // The script's trap stops the edge, the connector and the demo server.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl QuickStart {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

/// The command printed under the heading that starts with `number` (its continuation lines
/// joined, as a shell reads them).
fn example(output: &str, number: &str) -> String {
    let mut lines = output
        .lines()
        .skip_while(|l| !l.starts_with(number))
        .skip(1);
    let mut command = String::new();
    for line in lines.by_ref() {
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(part) => command.push_str(part),
            None => {
                command.push_str(line);
                break;
            }
        }
    }
    command
}

fn run(command: &str) -> (bool, String) {
    let out = Command::new("bash")
        .args(["-c", command])
        .output()
        .expect("bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_quick_start_shows_an_allowed_call_a_denial_and_a_verified_audit() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("quickstart.out");
    let child = Command::new("bash")
        .arg(repo_root().join("deploy/quickstart.sh"))
        .env(
            "UNDERPASS_BIN",
            bin("underpass-edge").parent().expect("bin dir"),
        )
        .env("UNDERPASS_CLIENT_PORT", free_port().to_string())
        .env("UNDERPASS_TUNNEL_PORT", free_port().to_string())
        .env("UNDERPASS_ADMIN_PORT", free_port().to_string())
        .env("UNDERPASS_DEMO_PORT", free_port().to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("quickstart.sh");
    let mut qs = QuickStart { child, out };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !qs.output().contains("Ctrl-C to stop") {
        assert!(
            Instant::now() < deadline && matches!(qs.child.try_wait(), Ok(None)),
            "the quick start did not come up:\n{}",
            qs.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = qs.output();
    assert!(output.contains("Dashboard:"), "{output}");

    let allowed = example(&output, "1.");
    let (ok, text) = run(&allowed);
    assert!(ok, "{allowed}\n{text}");
    assert!(text.contains("[HTTP 200]"), "{allowed}\n{text}");
    assert!(text.contains("hello through the tunnel"), "{text}");
    // The same call without the key: nobody is anonymous here.
    let key = allowed
        .find(" -H \"Authorization:")
        .map(|start| &allowed[start..])
        .and_then(|rest| rest.find(")\"").map(|end| &rest[..end + 2]))
        .expect("the example sends the API key");
    let (_, text) = run(&allowed.replace(key, ""));
    assert!(text.contains("[HTTP 401]"), "without credentials: {text}");

    let denied = example(&output, "2.");
    let (_, text) = run(&denied);
    assert!(text.contains("[HTTP 403]"), "{denied}\n{text}");
    assert!(text.contains("-31403"), "{text}");
    assert!(
        text.contains("no-identity-dump"),
        "the rule that denied it: {text}"
    );

    // Both calls are on the log once their answers have ended at the edge: a moment after the
    // client read them. The verify command must pass and count them.
    let verify = example(&output, "3.");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, text) = run(&verify);
        let log =
            std::fs::read_to_string(verify.rsplit(' ').next().unwrap_or("")).unwrap_or_default();
        let done = log.contains("\"principal\":\"apikey:quickstart\"")
            && log.contains("\"principal\":\"client:alice\"");
        if done {
            assert!(ok, "{verify}\n{text}");
            assert!(log.contains("\"decision\":\"deny\""), "{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the audit log lacks the calls:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut rest = String::new();
    let _ = std::fs::File::open(&qs.out).and_then(|mut f| f.read_to_string(&mut rest));
    assert!(!rest.contains("a process exited"), "{rest}");
}
