//! The shape of the code, checked like behaviour (ARCHITECTURE.md states these rules):
//! - no import cycles between the modules of any crate of the workspace;
//! - no non-test source file above 800 lines, unless its first lines say why (`//! Size: …`);
//! - `#![forbid(unsafe_code)]` at the root of every crate.
//!
//! Module edges are read from `crate::…` and `super::…` paths in code outside the test module
//! (comment lines skipped): an approximation of the compiler's view that errs toward seeing an
//! edge (a path in a string counts), never toward missing one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use underpass_tests::repo_root;

const MAX_LINES: usize = 800;
const SIZE_REASON: &str = "//! Size:";

/// Every crate of the workspace: a folder with a `Cargo.toml` and a `src/`.
fn crates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo_root()];
    while let Some(dir) = stack.pop() {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if ["target", "node_modules", ".git", "peers", "fuzz"].contains(&name) {
            continue;
        }
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            out.push(dir.clone());
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
}

/// A test file: `tests.rs`, `*_tests.rs`, or anything under a `tests/` folder inside `src/`.
fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_stem().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests"
        || name.ends_with("_tests")
        || rel.components().any(|c| c.as_os_str() == "tests")
}

/// Module path of a source file relative to `src/` (`a/b.rs` and `a/b/mod.rs` → `a::b`; the
/// crate root and binaries → `crate`).
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return format!("bin:{}", parts.join("/"));
    }
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".to_owned()
    } else {
        parts.join("::")
    }
}

/// The source without its inline test module (tests may reach anywhere): everything from a
/// `#[cfg(test)]` that opens a `mod … {` block, which by convention ends the file. A
/// `#[cfg(test)] mod tests;` declaration (tests in a sibling file) cuts nothing.
fn without_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let after = text[at + "#[cfg(test)]".len()..].trim_start();
        if let Some(decl) = after.strip_prefix("mod ") {
            let opens_block = decl
                .find(['{', ';'])
                .is_some_and(|j| decl.as_bytes()[j] == b'{');
            if opens_block {
                return &text[..at];
            }
        }
        from = at + 1;
    }
    text
}

fn idents_after<'a>(text: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let path: Vec<&str> = rest
            .split("::")
            .map(|seg| {
                let end = seg
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(seg.len());
                &seg[..end]
            })
            .take_while(|s| !s.is_empty())
            .collect();
        out.push(path);
    }
    out
}

/// Module → modules it names (outside tests), for one crate.
fn module_graph(krate: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = krate.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&src).ok()?;
            (!is_test_file(rel)).then(|| (module_of(rel), f.clone()))
        })
        .collect();
    let resolve = |segs: &[&str]| -> Option<String> {
        (1..=segs.len())
            .rev()
            .map(|k| segs[..k].join("::"))
            .find(|cand| modules.contains_key(cand))
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let code: String = without_tests(&text)
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = code.as_str();
        let mut targets = BTreeSet::new();
        for segs in idents_after(text, "crate::") {
            if let Some(t) = resolve(&segs) {
                targets.insert(t);
            }
        }
        let parent: Vec<&str> = module.split("::").collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        for segs in idents_after(text, "super::") {
            let mut full: Vec<&str> = parent.to_vec();
            full.extend(segs);
            if let Some(t) = resolve(&full) {
                targets.insert(t);
            }
        }
        // Naming your own submodule or your ancestor's item is not an edge between peers.
        targets.retain(|t| {
            t != module
                && !t.starts_with(&format!("{module}::"))
                && !module.starts_with(&format!("{t}::"))
                && t != "crate"
        });
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'g> {
        g: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_module_import_cycles_in_any_crate() {
    let mut found = Vec::new();
    for krate in crates() {
        for cycle in cycles(&module_graph(&krate)) {
            found.push(format!("{}: {}", krate.display(), cycle.join(" ⇄ ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn cycle_detection_sees_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    g.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    g.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        idents_after(
            "use crate::relay::{x}; fn f() { super::gate::g() }",
            "crate::"
        ),
        vec![vec!["relay"]]
    );
}

#[test]
fn no_long_source_file_without_a_reason() {
    let mut long = Vec::new();
    for krate in crates() {
        let src = krate.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let rel = f.strip_prefix(&src).unwrap_or(&f);
            if is_test_file(rel) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let code = without_tests(&text);
            let lines = code.lines().count();
            let explained = text.lines().take(40).any(|l| l.starts_with(SIZE_REASON));
            if lines > MAX_LINES && !explained {
                long.push(format!("{} ({lines} lines)", f.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "source files above {MAX_LINES} lines with no `{SIZE_REASON}` line at the top:\n{}",
        long.join("\n")
    );
}

#[test]
fn every_crate_forbids_unsafe_code() {
    let mut missing = Vec::new();
    for krate in crates() {
        let src = krate.join("src");
        // Roots: lib.rs, every main.rs, and every file directly in src/bin/.
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let roots: Vec<PathBuf> = files
            .into_iter()
            .filter(|f| {
                f == &src.join("lib.rs")
                    || f.file_name().is_some_and(|n| n == "main.rs")
                    || f.parent() == Some(src.join("bin").as_path())
            })
            .collect();
        for root in roots {
            let text = std::fs::read_to_string(&root).unwrap_or_default();
            if !text.contains("#![forbid(unsafe_code)]") {
                missing.push(root.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "crate roots without #![forbid(unsafe_code)]:\n{}",
        missing.join("\n")
    );
}
