//! The globs of `policy.toml`: plain `*` globs over names, URIs and argument values
//! ([`glob_match`], [`pattern_accepts`]), and path globs for file-path arguments ([`PathGlob`]).
//!
//! A path glob gives a value path semantics before matching it: the value is read as written
//! and percent-decoded (repeatedly, so `%252e` counts as `.`), and in every reading it must be
//! free of NUL and other control characters and of `\`, and have no `..` segment; `//` and `.`
//! segments are dropped. Only then is it matched segment by segment, `*` within one segment
//! and `**` across any number of them (including none). So `/srv/docs/**` accepts
//! `/srv/docs/a/b.txt` and `/srv//docs/./a.txt`, and refuses `/srv/docs/../../etc/passwd`,
//! `/srv/docs/%2e%2e/x` and `/srv/docs/a\0.txt`.

use percent_encoding::percent_decode_str;

/// Matches `text` against `pattern`, where `*` matches any run of characters (including none)
/// and everything else is literal and case-sensitive.
///
/// Runs in O(len(pattern) × len(text)) at worst: the pieces between stars are searched for
/// greedily from left to right, which is exact for `*`-only globs, so there is no backtracking.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(text) = text.strip_prefix(head) else {
        return false;
    };
    let (middle, tail) = rest.rsplit_once('*').unwrap_or(("", rest));
    let Some(mut text) = text.strip_suffix(tail) else {
        return false;
    };
    for piece in middle.split('*').filter(|p| !p.is_empty()) {
        match text.find(piece) {
            Some(at) => text = &text[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// How many rounds of percent-decoding a value gets before it must be stable: a value still
/// changing after that (`%25252e…`) is refused rather than guessed at.
const MAX_DECODE_ROUNDS: usize = 4;

/// The readings of `value` a backend might act on: as written, then percent-decoded until it
/// no longer changes. `None` if it keeps changing after [`MAX_DECODE_ROUNDS`], or decodes to
/// bytes that are not UTF-8.
fn readings(value: &str) -> Option<Vec<String>> {
    let mut out = vec![value.to_owned()];
    for _ in 0..MAX_DECODE_ROUNDS {
        let last = out.last()?;
        let decoded = percent_decode_str(last).decode_utf8().ok()?.into_owned();
        if decoded == *last {
            return Some(out);
        }
        out.push(decoded);
    }
    None
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Whether some `/`- or `\`-separated segment of `s` is `..`.
fn has_dot_dot(s: &str) -> bool {
    s.split(['/', '\\']).any(|seg| seg == "..")
}

/// Whether a `pattern` constraint accepts `value`.
///
/// A value containing NUL is never accepted. When the pattern contains `/` (a path or URL),
/// neither is a value with control characters, or with a `..` segment (separated by `/` or
/// `\`) as written or percent-decoded: `*` would otherwise let `/srv/docs/*` reach
/// `/srv/docs/../../etc/passwd`. Otherwise it is [`glob_match`].
pub fn pattern_accepts(pattern: &str, value: &str) -> bool {
    if value.contains('\0') {
        return false;
    }
    if pattern.contains('/') {
        let Some(readings) = readings(value) else {
            return false;
        };
        if readings.iter().any(|r| has_control(r) || has_dot_dot(r)) {
            return false;
        }
    }
    glob_match(pattern, value)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of segments, including none.
    Any,
    /// One segment, `*` matching within it.
    Glob(String),
}

/// A compiled `path` constraint, e.g. `/srv/docs/**` (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGlob {
    absolute: bool,
    segments: Vec<Segment>,
}

/// The segments of a path that passed the safety checks: `None` for a `..` segment.
fn segments(path: &str) -> Option<(bool, Vec<&str>)> {
    let mut out = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s => out.push(s),
        }
    }
    Some((path.starts_with('/'), out))
}

impl PathGlob {
    /// Compiles a path glob. Refused: an empty pattern, control characters, `\`, a `..`
    /// segment, or `**` that is not a whole segment.
    pub fn parse(pattern: &str) -> Result<PathGlob, String> {
        if pattern.is_empty() {
            return Err("`path` must not be empty".into());
        }
        if has_control(pattern) {
            return Err("`path` must not contain control characters".into());
        }
        if pattern.contains('\\') {
            return Err("`path` separates segments with `/`, not `\\`".into());
        }
        let Some((absolute, parts)) = segments(pattern) else {
            return Err("`path` must not contain a `..` segment".into());
        };
        let segments = parts
            .into_iter()
            .map(|s| match s {
                "**" => Ok(Segment::Any),
                s if s.contains("**") => Err(format!(
                    "`**` must be a whole segment (as in \"/srv/**/x\"), not part of {s:?}"
                )),
                s => Ok(Segment::Glob(s.to_owned())),
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(PathGlob { absolute, segments })
    }

    /// Whether `value` is a safe path that matches, in every reading (as written and
    /// percent-decoded).
    pub fn matches(&self, value: &str) -> bool {
        let Some(readings) = readings(value) else {
            return false;
        };
        readings.iter().all(|r| self.matches_reading(r))
    }

    fn matches_reading(&self, value: &str) -> bool {
        if has_control(value) || value.contains('\\') {
            return false;
        }
        let Some((absolute, parts)) = segments(value) else {
            return false;
        };
        absolute == self.absolute && match_segments(&self.segments, &parts)
    }
}

/// Segment matching by dynamic programming over (pattern segment, value position): at most
/// O(pattern × value) glob checks, whatever the `**`.
fn match_segments(pattern: &[Segment], value: &[&str]) -> bool {
    let mut reach = vec![false; value.len() + 1];
    reach[0] = true;
    for seg in pattern {
        let mut next = vec![false; value.len() + 1];
        match seg {
            Segment::Any => {
                let mut on = false;
                for (j, slot) in next.iter_mut().enumerate() {
                    on |= reach[j];
                    *slot = on;
                }
            }
            Segment::Glob(g) => {
                for (j, part) in value.iter().enumerate() {
                    if reach[j] && glob_match(g, part) {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[value.len()]
}

#[cfg(test)]
mod prop_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_edge_cases() {
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything at all"));
        assert!(glob_match("**", ""));
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abcd"));
        assert!(!glob_match("abc", "ABC"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(glob_match("a*b*c", "abbbcbc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match("a*b*c", "abcd"));
        assert!(glob_match("get-*", "get-"));
        assert!(!glob_match("get-*", "get"));
        assert!(glob_match("*delete*", "delete"));
        assert!(glob_match("*delete*", "soft-delete-all"));
        assert!(!glob_match("*delete*", "Delete"));
        // head and tail must not overlap
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("ab*ba", "abba"));
        assert!(glob_match("a*a*a", "aaa"));
        assert!(!glob_match("a*a*a", "aa"));
        // literal characters that are special elsewhere
        assert!(glob_match("file:///srv/?[x]*", "file:///srv/?[x]y"));
        assert!(!glob_match("a?c", "abc"));
        // non-ASCII
        assert!(glob_match("é*ü", "éxxü"));
        // pathological: many stars against a long near-miss completes quickly
        let pattern = format!("{}b", "a*".repeat(200));
        let text = "a".repeat(10_000);
        assert!(!glob_match(&pattern, &text));
        assert!(glob_match(&pattern, &format!("{text}b")));
        assert!(glob_match(&"*".repeat(1000), &text));
    }

    #[test]
    fn path_shaped_patterns_refuse_traversal_and_nul() {
        let ok = |v: &str| pattern_accepts("/srv/docs/*", v);
        assert!(ok("/srv/docs/a.txt"));
        assert!(ok("/srv/docs/"));
        assert!(
            ok("/srv/docs/sub/dir/a.txt"),
            "`*` still spans `/` in a pattern"
        );
        assert!(ok("/srv/docs/a..b"), "`..` inside a name is not a segment");
        assert!(ok("/srv/docs/100%.txt"));
        for bad in [
            "/srv/docs/../../etc/passwd",
            "/srv/docs/..",
            "/srv/docs/%2e%2e/x",
            "/srv/docs/%2E%2E/x",
            "/srv/docs/.%2e/x",
            "/srv/docs/%252e%252e/x",
            "/srv/docs/%2e%2e%2fx",
            "/srv/docs/..\\..\\etc\\passwd",
            "/srv/docs/a%5c..%5cb",
            "/srv/docs/a\u{0}.txt",
            "/srv/docs/a%00.txt",
            "/srv/docs/a\n.txt",
            "/srv/docs/%2525252e%2525252e/x",
            "/srv/docs/%ff",
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
        // URL-shaped patterns get the same care.
        assert!(!pattern_accepts(
            "https://api.example.com/public/*",
            "https://api.example.com/public/../admin"
        ));
        // Other patterns keep plain glob semantics, except that NUL never matches.
        assert!(pattern_accepts("*", "../x"));
        assert!(pattern_accepts("note-*", "note-a\nb"));
        assert!(!pattern_accepts("*", "a\u{0}b"));
    }

    #[test]
    fn path_globs_match_per_segment_after_normalizing() {
        let g = |p: &str| PathGlob::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let docs = g("/srv/docs/**");
        for good in [
            "/srv/docs",
            "/srv/docs/",
            "/srv/docs/a.txt",
            "/srv/docs/a/b/c.txt",
            "/srv//docs/./a.txt",
            "/srv/docs/a%20b.txt",
            "/srv/docs/a..b",
        ] {
            assert!(docs.matches(good), "{good:?}");
        }
        for bad in [
            "/srv/docs/../../etc/passwd",
            "/srv/docs/a/../b",
            "/srv/docs/%2e%2e/x",
            "/srv/docs/%252e%252e/x",
            "/srv/docs%2f..%2fetc",
            "/srv/docs/a\u{0}.txt",
            "/srv/docs/a%00.txt",
            "/srv/docs/a\u{7f}",
            "/srv/docs/..\\x",
            "/srv/docs/a\\b",
            "/srv/docs/%5c",
            "srv/docs/a",
            "/srv/docsx/a",
            "/srv/doc",
            "/etc/passwd",
            "",
        ] {
            assert!(!docs.matches(bad), "{bad:?}");
        }
        let one = g("/srv/docs/*.txt");
        assert!(one.matches("/srv/docs/a.txt"));
        assert!(
            !one.matches("/srv/docs/a/b.txt"),
            "`*` stays within a segment"
        );
        assert!(!one.matches("/srv/docs/a.md"));
        let mid = g("/srv/**/public/*");
        assert!(mid.matches("/srv/public/x"));
        assert!(mid.matches("/srv/a/b/public/x"));
        assert!(!mid.matches("/srv/a/b/private/x"));
        let rel = g("docs/**");
        assert!(rel.matches("docs/a"));
        assert!(
            !rel.matches("/docs/a"),
            "relative and absolute paths differ"
        );
        // many `**` against a long path stays cheap and exact
        let stars = g(&format!("/{}x", "**/".repeat(50)));
        let long = format!("/{}y", "a/".repeat(500));
        assert!(!stars.matches(&long));
        assert!(stars.matches(&format!("/{}x", "a/".repeat(500))));
    }

    #[test]
    fn bad_path_globs() {
        for (bad, why) in [
            ("", "empty"),
            ("/srv/../etc/**", ".."),
            ("/srv/a**/x", "whole segment"),
            ("C:\\docs\\**", "`/`"),
            ("/srv/\u{0}", "control"),
        ] {
            let e = PathGlob::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
