//! Stdio backends: MCP servers that are local processes speaking newline-delimited JSON-RPC on
//! stdin/stdout. Each session is one process ([`ProcessOpener`] spawns it, [`Supervisor`]
//! owns it); the session bridge ([`crate::bridge`]) does the rest.
//!
//! Everything the process writes on stdout is one JSON-RPC message per line; stderr is its
//! log (per the spec, not an error sign) and goes to the connector's log.

mod supervisor;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

pub use self::supervisor::Supervisor;
use crate::bridge::{BridgeError, Inbox, LinkOpener, SessionBridge, WriteCmd};

/// Longest stdout line accepted; longer messages are skipped (and logged) so that one runaway
/// message cannot exhaust the connector's memory.
const MAX_STDOUT_LINE: usize = 16 * 1024 * 1024;
/// Longest stderr line logged; the rest of a longer line is cut.
const MAX_STDERR_LINE: usize = 8 * 1024;

/// One configured stdio service and the processes of its sessions (one each).
pub type StdioBackend = SessionBridge<ProcessOpener>;

/// Spawns the process of each new session.
pub struct ProcessOpener {
    command: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
}

impl ProcessOpener {
    /// `command` is the program and its arguments; `env` is added to the connector's own
    /// environment; `cwd` is the working directory (else the connector's).
    pub fn new(command: Vec<String>, env: BTreeMap<String, String>, cwd: Option<PathBuf>) -> Self {
        ProcessOpener { command, env, cwd }
    }
}

impl LinkOpener for ProcessOpener {
    type Link = Supervisor;
    const LABEL: &'static str = "stdio";

    /// Spawns the process and starts the tasks around it: a writer that owns stdin, a reader
    /// that routes stdout, a logger for stderr.
    fn open(
        &self,
        writes: mpsc::Receiver<WriteCmd>,
        inbox: Inbox,
    ) -> Result<Supervisor, BridgeError> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| BridgeError::NoCommand(inbox.service().to_owned()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: shutdown signals reach wrappers' children too (`npx` →
            // `node`), and a Ctrl-C meant for the connector does not kill servers mid-request.
            .process_group(0);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| spawn_failed(&inbox, &format!("cannot start {program:?}: {e}")))?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            return Err(spawn_failed(&inbox, "its stdio pipes were not created"));
        };
        let writer = tokio::spawn(write_stdin(stdin, writes));
        let reader = tokio::spawn(read_stdout(stdout, inbox.clone()));
        tokio::spawn(log_stderr(
            stderr,
            inbox.service().to_owned(),
            inbox.session().to_owned(),
        ));
        Ok(Supervisor::new(child, inbox, reader, writer))
    }

    fn init_failed(reason: String) -> BridgeError {
        BridgeError::InitFailed(reason)
    }
}

/// Logs why a process could not be started; the client learns only the reference.
fn spawn_failed(inbox: &Inbox, detail: &str) -> BridgeError {
    let reference = underpass_shared::incident::new_ref();
    tracing::warn!(service = %inbox.service(), %reference, "stdio server not started: {detail}");
    BridgeError::Spawn { reference }
}

/// Owns stdin, so lines are never interleaved or cut by a cancelled exchange. Ends (closing
/// stdin) on `Close` or on the first write error.
async fn write_stdin(mut stdin: ChildStdin, mut rx: mpsc::Receiver<WriteCmd>) -> io::Result<()> {
    while let Some(cmd) = rx.recv().await {
        let WriteCmd::Line(line, ack) = cmd else {
            return Ok(());
        };
        let result = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        }
        .await;
        let failed = result
            .as_ref()
            .err()
            .map(|e| io::Error::new(e.kind(), e.to_string()));
        let _ = ack.send(result);
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

async fn read_stdout(stdout: ChildStdout, inbox: Inbox) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::new();
    loop {
        match read_line_bounded(&mut reader, &mut buf, MAX_STDOUT_LINE).await {
            Ok(Line::Eof) => return,
            Ok(Line::Whole) => inbox.dispatch(&buf).await,
            Ok(Line::Cut { len }) => {
                tracing::warn!(service = %inbox.service(), session = %inbox.session(),
                    "stdio server wrote a {len}-byte line on stdout, over the {MAX_STDOUT_LINE}-byte limit: skipped");
            }
            Err(e) => {
                tracing::warn!(service = %inbox.service(), session = %inbox.session(), "reading stdout failed: {e}");
                return;
            }
        }
    }
}

/// Forwards stderr to the log line by line; per the spec stderr is logging, not an error sign.
async fn log_stderr(stderr: ChildStderr, service: String, session: String) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        match read_line_bounded(&mut reader, &mut buf, MAX_STDERR_LINE).await {
            Ok(Line::Whole) => {
                let text = String::from_utf8_lossy(buf.trim_ascii_end());
                tracing::info!(%service, %session, "stderr: {text}");
            }
            Ok(Line::Cut { len }) => {
                let text = String::from_utf8_lossy(&buf);
                tracing::info!(%service, %session, "stderr: {text}… (line of {len} bytes cut)");
            }
            Ok(Line::Eof) | Err(_) => return,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// `buf` holds the whole line, without its newline.
    Whole,
    /// The line was longer than the cap: `buf` holds its first `cap` bytes.
    Cut {
        len: usize,
    },
    Eof,
}

/// Reads one line into `buf` without ever holding more than `cap` bytes of it.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut len = 0usize;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match len {
                0 => Line::Eof,
                n if n > cap => Line::Cut { len: n },
                _ => Line::Whole,
            });
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        len += part.len();
        let used = newline.map_or(chunk.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(if len > cap {
                Line::Cut { len }
            } else {
                Line::Whole
            });
        }
    }
}

#[cfg(test)]
mod tests;
