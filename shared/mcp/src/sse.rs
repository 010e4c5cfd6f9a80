//! Server-sent events (WHATWG HTML, "Server-sent events"), not MCP-specific: an incremental
//! `text/event-stream` parser ([`SseParser`]) that keeps each unit's bytes so untouched events
//! are forwarded byte for byte, and the writer of new or modified events
//! ([`SseEvent::to_bytes`]).

use std::time::Duration;

/// Interval of keep-alive comments on an event stream that has nothing to send: below
/// common proxy and NAT idle timeouts.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// The keep-alive comment: a stand-alone unit every parser skips.
pub const KEEPALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

/// The response header (and value) that asks reverse proxies such as nginx not to buffer an
/// event stream.
pub const NO_BUFFERING_HEADER: (&str, &str) = ("x-accel-buffering", "no");

/// The default limit of [`SseParser::new`]: 16 MiB per event.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// Why an SSE stream cannot be parsed further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event (or one line) exceeds the parser's size limit.
    #[error("server-sent event larger than {max} bytes")]
    EventTooLarge {
        /// The limit.
        max: usize,
    },
}

/// One unit of an SSE stream, as the parser delimits it.
///
/// Most are events: the lines of one block up to and including the blank line that ends
/// it. To forward keep-alives without delay, a comment line or a blank line arriving
/// outside any block is its own unit, as is the `\n` of a `\r\n` split across chunks
/// after its block was already emitted. Concatenating the [`SseEvent::to_bytes`] of the
/// unmodified units gives back the input exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    raw: Option<Vec<u8>>,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    comment: Option<String>,
}

impl SseEvent {
    /// A new `message` event (no `event:` line) carrying `data`.
    pub fn new(data: &str) -> Self {
        SseEvent {
            data: Some(data.to_owned()),
            ..SseEvent::default()
        }
    }

    /// The `event:` type, if set.
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The data (data lines joined by `\n`), if the block had any `data` line. Only
    /// blocks with data are dispatched to an `EventSource`.
    pub fn data(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// The `id:` value, if set.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The `retry:` value, if set (and a valid integer).
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The text of a stand-alone comment unit (without the `:`).
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// Whether an `EventSource` would dispatch this unit (it has data).
    pub fn is_dispatched(&self) -> bool {
        self.data.is_some()
    }

    /// The bytes as received, unless the unit was built or modified.
    pub fn raw(&self) -> Option<&[u8]> {
        self.raw.as_deref()
    }

    /// Replaces the data; the unit is then re-serialized by [`SseEvent::to_bytes`].
    pub fn set_data(&mut self, data: impl Into<String>) {
        self.data = Some(data.into());
        self.raw = None;
    }

    /// Sets the `event:` type; the unit is then re-serialized.
    pub fn set_event(&mut self, event: Option<String>) {
        self.event = event;
        self.raw = None;
    }

    /// Sets the `id:`; the unit is then re-serialized.
    pub fn set_id(&mut self, id: Option<String>) {
        self.id = id;
        self.raw = None;
    }

    /// The bytes to forward: the received bytes of an unmodified unit, otherwise a fresh
    /// serialization with `\n` line endings (CR, LF and NUL that cannot be represented in
    /// a field are dropped; data lines are split on any line ending).
    pub fn to_bytes(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let clean = |s: &str| -> String {
            s.chars()
                .filter(|c| *c != '\r' && *c != '\n' && *c != '\0')
                .collect()
        };
        let mut out = Vec::new();
        let fields = self.event.is_some()
            || self.id.is_some()
            || self.retry.is_some()
            || self.data.is_some();
        if let Some(c) = &self.comment {
            out.push(b':');
            out.extend_from_slice(clean(c).as_bytes());
            out.push(b'\n');
            if !fields {
                return out;
            }
        }
        if let Some(e) = &self.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(clean(e).as_bytes());
            out.push(b'\n');
        }
        if let Some(id) = &self.id {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(clean(id).as_bytes());
            out.push(b'\n');
        }
        if let Some(r) = self.retry {
            out.extend_from_slice(format!("retry: {r}\n").as_bytes());
        }
        if let Some(d) = &self.data {
            let normalized = d.replace("\r\n", "\n").replace('\r', "\n");
            for line in normalized.split('\n') {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
        out.push(b'\n');
        out
    }
}

/// An incremental `text/event-stream` parser (WHATWG HTML "Server-sent events"): lines
/// end in `\r\n`, `\n` or `\r`, also when split across chunks; a leading BOM is ignored;
/// `:` lines are comments; `data` lines accumulate, `event`, `id` (without NUL) and
/// `retry` (digits only) are recorded; unknown fields are ignored.
#[derive(Debug)]
pub struct SseParser {
    max_event_size: usize,
    /// The current line, without its terminator.
    line: Vec<u8>,
    /// The raw bytes of the block being built (complete lines with terminators).
    block_raw: Vec<u8>,
    block: SseEvent,
    /// The last byte seen was a `\r` ending a line: a leading `\n` belongs to it.
    after_cr: bool,
    /// The size the unit ended by that `\r` was checked at: its `\n` adds one byte.
    cr_unit_size: usize,
    first_line: bool,
    failed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT_SIZE)
    }
}

impl SseParser {
    /// A parser refusing any event (or stand-alone line) longer than `max_event_size`
    /// bytes.
    pub fn new(max_event_size: usize) -> Self {
        SseParser {
            max_event_size,
            line: Vec::new(),
            block_raw: Vec::new(),
            block: SseEvent::default(),
            after_cr: false,
            cr_unit_size: 0,
            first_line: true,
            failed: false,
        }
    }

    /// Consumes the next chunk of the stream and returns the units it completes.
    ///
    /// After an error the parser stays failed: the stream must be abandoned.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if self.failed {
            return Err(SseError::EventTooLarge {
                max: self.max_event_size,
            });
        }
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr {
            if let Some((&first, tail)) = rest.split_first() {
                self.after_cr = false;
                if first == b'\n' {
                    // Checked as if the `\r\n` had arrived whole, so the limit does not
                    // depend on where the stream was cut.
                    if self.cr_unit_size.saturating_add(1) > self.max_event_size {
                        return Err(self.fail());
                    }
                    rest = tail;
                    if self.block_raw.is_empty() {
                        out.push(SseEvent {
                            raw: Some(b"\n".to_vec()),
                            ..SseEvent::default()
                        });
                    } else {
                        self.block_raw.push(b'\n');
                    }
                }
            }
        }
        while !rest.is_empty() {
            let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.line.extend_from_slice(rest);
                self.check_size(0)?;
                break;
            };
            self.line.extend_from_slice(&rest[..pos]);
            let term_len = if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        self.after_cr = true;
                        1
                    }
                }
            } else {
                1
            };
            let size = self.check_size(term_len)?;
            if self.after_cr {
                self.cr_unit_size = size;
            }
            let term = &rest[pos..pos + term_len];
            self.end_line(term, &mut out);
            rest = &rest[pos + term_len..];
        }
        Ok(out)
    }

    /// Ends the stream: returns the bytes of an unfinished block (which an
    /// `EventSource` would discard) so they can be forwarded or dropped.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.block_raw);
        rest.append(&mut self.line);
        self.block = SseEvent::default();
        rest
    }

    /// The size of the unit being built plus `extra` bytes, or the error if that is over the
    /// limit.
    fn check_size(&mut self, extra: usize) -> Result<usize, SseError> {
        let size = self
            .block_raw
            .len()
            .saturating_add(self.line.len())
            .saturating_add(extra);
        if size > self.max_event_size {
            return Err(self.fail());
        }
        Ok(size)
    }

    fn fail(&mut self) -> SseError {
        self.failed = true;
        self.line = Vec::new();
        self.block_raw = Vec::new();
        SseError::EventTooLarge {
            max: self.max_event_size,
        }
    }

    fn end_line(&mut self, term: &[u8], out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        let mut content: &[u8] = &line;
        if self.first_line {
            self.first_line = false;
            if let Some(rest) = content.strip_prefix(b"\xEF\xBB\xBF") {
                content = rest;
            }
        }
        let mut raw = line.clone();
        raw.extend_from_slice(term);

        if content.is_empty() {
            if self.block_raw.is_empty() {
                out.push(SseEvent {
                    raw: Some(raw),
                    ..SseEvent::default()
                });
            } else {
                self.block_raw.extend_from_slice(&raw);
                let mut event = std::mem::take(&mut self.block);
                event.raw = Some(std::mem::take(&mut self.block_raw));
                if let Some(d) = event.data.as_mut() {
                    // Data lines were each followed by '\n'; drop the last one.
                    d.pop();
                }
                out.push(event);
            }
        } else if let Some(text) = content.strip_prefix(b":") {
            if self.block_raw.is_empty() {
                out.push(SseEvent {
                    raw: Some(raw),
                    comment: Some(String::from_utf8_lossy(text).into_owned()),
                    ..SseEvent::default()
                });
            } else {
                self.block_raw.extend_from_slice(&raw);
            }
        } else {
            let (field, value) = match content.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &content[i + 1..];
                    (&content[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (content, &b""[..]),
            };
            let value = String::from_utf8_lossy(value);
            match field {
                b"data" => {
                    let d = self.block.data.get_or_insert_with(String::new);
                    d.push_str(&value);
                    d.push('\n');
                }
                b"event" => self.block.event = Some(value.into_owned()),
                b"id" if !value.contains('\0') => {
                    self.block.id = Some(value.into_owned());
                }
                b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    if let Ok(r) = value.parse() {
                        self.block.retry = Some(r);
                    }
                }
                _ => {}
            }
            self.block_raw.extend_from_slice(&raw);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
