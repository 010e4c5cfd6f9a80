//! Pre-flight checks (`underpass-edge doctor`, `underpass-connector doctor`, and the checks a
//! connector runs at start for its readiness): the results model, the table an operator reads,
//! the exit status, and the evaluation of a certificate pair ([`cert`]). Pure: the daemons'
//! doctor modules do the I/O and hand their results here.

pub mod cert;

use std::fmt::Write as _;

use serde::Serialize;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Works.
    Pass,
    /// Not checked here (does not apply to this configuration, or depends on a failed check).
    Skip,
    /// Works now, but will not for long, or only by a fallback.
    Warn,
    /// Broken: the daemon will not work as configured.
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's result: what was checked, the verdict, what was found, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `certificate` or `edge edge.example:7443 quic`.
    pub name: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a WARN or FAIL (empty otherwise).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub todo: String,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Pass, detail, "")
    }

    pub fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, detail, "")
    }

    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        todo: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Warn, detail, todo)
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        todo: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Fail, detail, todo)
    }

    pub fn new(
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        todo: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            todo: todo.into(),
        }
    }

    /// Whether this check failed.
    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }

    /// The detail and what to do, as one line (the table's last column, a log line).
    pub fn explain(&self) -> String {
        if self.todo.is_empty() {
            self.detail.clone()
        } else {
            format!("{}; {}", self.detail, self.todo)
        }
    }
}

/// The exit status of a doctor run: 0 when nothing failed, 1 with any FAIL (warnings do not
/// fail a run: the daemon works).
pub fn exit_code(checks: &[Check]) -> u8 {
    if checks.iter().any(|c| c.status == Status::Fail) {
        1
    } else {
        0
    }
}

/// A whole doctor run as the command prints it, with its exit status: `load` is the loaded
/// configuration or why it did not load (`file` names it in the one `config` row, exit 2);
/// `run` makes the rows of a loaded one (exit 1 with any FAIL). `json`: `{"ok", "checks"}`
/// instead of the table.
pub fn report<C, E: std::fmt::Display>(
    load: Result<C, E>,
    file: &str,
    run: impl FnOnce(C) -> Vec<Check>,
    json: bool,
) -> (String, u8) {
    let (checks, code) = match load {
        Err(e) => (
            vec![Check::fail(
                "config",
                e.to_string(),
                format!("fix {file} (the error says where); nothing else was checked"),
            )],
            2,
        ),
        Ok(config) => {
            let checks = run(config);
            let code = exit_code(&checks);
            (checks, code)
        }
    };
    let text = if json {
        format!(
            "{:#}\n",
            serde_json::json!({"ok": code == 0, "checks": checks})
        )
    } else {
        render_table(&checks)
    };
    (text, code)
}

/// The failed checks, for readiness (`problems`).
pub fn failures(checks: &[Check]) -> Vec<&Check> {
    checks.iter().filter(|c| c.status == Status::Fail).collect()
}

/// The table an operator reads: `CHECK | RESULT | DETAIL / WHAT TO DO`, one row per check,
/// then a summary line. Columns are padded to the longest name; details are not wrapped.
pub fn render_table(checks: &[Check]) -> String {
    const HEAD: [&str; 3] = ["CHECK", "RESULT", "DETAIL / WHAT TO DO"];
    let width = checks
        .iter()
        .map(|c| c.name.chars().count())
        .chain([HEAD[0].len()])
        .max()
        .unwrap_or(HEAD[0].len());
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}  {:<6}  {}", HEAD[0], HEAD[1], HEAD[2]);
    for c in checks {
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {}",
            c.name,
            c.status.as_str(),
            one_line(&c.explain())
        );
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let _ = writeln!(
        out,
        "\n{} passed, {} warnings, {} failed, {} skipped",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Skip)
    );
    out
}

/// Newlines and other control characters (from an error chain, a peer's reason) would break
/// the table's rows: replaced by spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
