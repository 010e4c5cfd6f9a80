//! `[federation]` and `[[views]]` in `edge.toml`, and their checks. A leaf: `config` uses it,
//! it uses nothing of the edge.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

/// `[federation]`: the federated endpoint `/mcp` (every service the caller may use, as one
/// MCP server) and its views.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// How long a federated list waits for the services' answers. A service that has not
    /// answered by then is left out of that answer (with a log line and a metric), or fails it
    /// when its `on_failure = "fail"`. Default 2 s; between 10 ms and 60 s.
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// What joins a service's prefix and a name: `everything__echo`. Default `"__"`; 1 to 8
    /// characters of `A-Z a-z 0-9 _ . -`. No prefix may contain it (names split at the first).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Items per page of a federated list (a sealed `nextCursor` leads to the next). Default
    /// 500; between 1 and 10,000.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// How long the lists of a backend that gives no `ttlMs` (2025-11-25 and older) are
    /// cached, per caller. Default 0 s: not cached, as the specification reads a missing hint.
    #[serde(default, with = "humantime_serde")]
    pub default_ttl: Duration,
    /// Most entries the edge's response cache holds (least recently used go first). Default 4096.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// Most bytes (JSON) the edge's response cache holds. Default 64 MiB.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: usize,
    /// Most items read from one service's list, over all its pages: the rest is left out, with
    /// a log line. Default 10,000.
    #[serde(default = "default_max_items")]
    pub max_items_per_service: usize,
    /// Most pages read of one service's list. Default 100.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Whether the edge lists every service's tools and prompts at start, once its tunnel is
    /// up, to log the names it shortens (and warm the cache). Default true; off, a service is
    /// first listed when a client asks, and its shortened names are logged then.
    #[serde(default = "default_true")]
    pub list_at_start: bool,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            deadline: default_deadline(),
            separator: default_separator(),
            page_size: default_page_size(),
            default_ttl: Duration::ZERO,
            cache_entries: default_cache_entries(),
            cache_bytes: default_cache_bytes(),
            max_items_per_service: default_max_items(),
            max_pages: default_max_pages(),
            list_at_start: true,
        }
    }
}

fn default_deadline() -> Duration {
    Duration::from_secs(2)
}
fn default_separator() -> String {
    "__".to_owned()
}
fn default_page_size() -> usize {
    500
}
fn default_cache_entries() -> usize {
    4096
}
fn default_cache_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_max_items() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}

fn default_max_pages() -> usize {
    100
}

/// What a federated list does when a service cannot answer in time (`[[services]] on_failure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Left out of the answer, with a log line and a metric (the default).
    #[default]
    Omit,
    /// The whole answer is an error that names the service.
    Fail,
}

/// `[[views]]`: a named endpoint `/mcp/view/{name}` serving a chosen part of the federated
/// endpoint. The caller's policy still applies on top.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// The view's name, as in `/mcp/view/{name}`.
    pub name: String,
    /// Federated tool names shown (`everything__echo`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Federated prompt names shown.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// Federated resource URIs shown (`underpass://everything/demo://readme`); templates
    /// listed here by their federated URI template.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Other names for tools, prompts and resources of the view: alias → federated name or
    /// URI. The view shows the alias instead, and a call of the alias runs the tool it names
    /// (reads the resource it names). A resource template's alias stands for its expansions
    /// too, by what precedes the first `{` of each (`test://t/{id}` for
    /// `underpass://svc/test://t/{id}` maps `test://t/7` to `underpass://svc/test://t/7`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Descriptions that replace the backend's: federated name (or alias) → text.
    #[serde(default)]
    pub descriptions: BTreeMap<String, String>,
}

impl ViewConfig {
    /// Whether the view shows a tool or prompt (by federated name) or resource (by federated URI).
    pub fn shows(&self, list: Listed, federated: &str) -> bool {
        let chosen = match list {
            Listed::Tool => &self.tools,
            Listed::Prompt => &self.prompts,
            Listed::Resource => &self.resources,
        };
        chosen.iter().any(|c| c == federated)
    }

    /// The name a view shows for a federated name: its alias, if it has one.
    pub fn shown_name<'a>(&'a self, federated: &'a str) -> &'a str {
        self.aliases
            .iter()
            .find(|(_, target)| target.as_str() == federated)
            .map_or(federated, |(alias, _)| alias.as_str())
    }

    /// The federated name a name the view showed stands for.
    pub fn federated_name<'a>(&'a self, shown: &'a str) -> &'a str {
        self.aliases.get(shown).map_or(shown, String::as_str)
    }

    /// The resource aliases whose targets are templates: (alias head, target head), each
    /// what precedes the first `{`.
    fn template_aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases
            .iter()
            .filter(|(_, target)| self.resources.contains(target))
            .filter_map(|(alias, target)| {
                let (alias_head, _) = alias.split_once('{')?;
                let (target_head, _) = target.split_once('{')?;
                Some((alias_head, target_head))
            })
    }

    /// The federated URI a URI the view showed stands for: an alias, an expansion of a
    /// template's alias, or itself.
    pub fn federated_uri(&self, shown: &str) -> String {
        if let Some(target) = self.aliases.get(shown) {
            return target.clone();
        }
        self.template_aliases()
            .find_map(|(alias, target)| Some(format!("{target}{}", shown.strip_prefix(alias)?)))
            .unwrap_or_else(|| shown.to_owned())
    }

    /// The URI a view shows for a federated URI (of a resource read, say): its alias, or an
    /// expansion of a template's alias, or itself.
    pub fn shown_uri(&self, federated: &str) -> String {
        if let Some((alias, _)) = self.aliases.iter().find(|(_, t)| t.as_str() == federated) {
            return alias.clone();
        }
        self.template_aliases()
            .find_map(|(alias, target)| Some(format!("{alias}{}", federated.strip_prefix(target)?)))
            .unwrap_or_else(|| federated.to_owned())
    }
}

/// The kinds of item a view chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Tool,
    Prompt,
    Resource,
}

/// What keeps federated names unambiguous: the separator's alphabet, each service's prefix
/// (`prefixes`: service name, its prefix) free of the separator and unique, and views whose
/// names are unique and whose aliases clash with nothing.
pub fn validate(
    fed: &FederationConfig,
    prefixes: &[(&str, &str)],
    views: &[ViewConfig],
) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    let sep = &fed.separator;
    if sep.is_empty() || sep.len() > 8 || !sep.chars().all(allowed) {
        bail!("[federation] separator {sep:?} must be 1 to 8 characters of A-Z a-z 0-9 _ . -");
    }
    if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&fed.deadline) {
        bail!("[federation] deadline must be between 10ms and 60s");
    }
    if !(1..=10_000).contains(&fed.page_size) {
        bail!("[federation] page_size must be between 1 and 10000");
    }
    if fed.max_items_per_service == 0 || fed.max_pages == 0 || fed.cache_entries == 0 {
        bail!("[federation] max_items_per_service, max_pages and cache_entries must be at least 1");
    }
    let mut seen = HashSet::new();
    for (service, prefix) in prefixes {
        if prefix.is_empty() || prefix.len() > 32 || !prefix.chars().all(allowed) {
            bail!(
                "service {service:?}: prefix {prefix:?} must be 1 to 32 characters of \
                 A-Z a-z 0-9 _ . -"
            );
        }
        // Split at the first separator, `{prefix}{sep}` must find it right after the prefix:
        // a prefix containing it, or ending with part of it (`a_` before `__`), could not be
        // told apart.
        if format!("{prefix}{sep}").find(sep.as_str()) != Some(prefix.len()) {
            bail!(
                "service {service:?}: its federated prefix {prefix:?} contains the separator \
                 {sep:?}, so its names could not be told apart on /mcp; set `prefix` in its \
                 [[services]] entry, or another [federation] separator"
            );
        }
        if !seen.insert(*prefix) {
            bail!("two services share the federated prefix {prefix:?}: give one another `prefix`");
        }
    }
    let mut names = HashSet::new();
    for view in views {
        let ok = !view.name.is_empty() && view.name.len() <= 64 && view.name.chars().all(allowed);
        if !ok {
            bail!(
                "[[views]] name {:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
                view.name
            );
        }
        if !names.insert(view.name.as_str()) {
            bail!("[[views]] {:?} is listed twice", view.name);
        }
        for (alias, target) in &view.aliases {
            let shown = view
                .tools
                .iter()
                .chain(&view.prompts)
                .chain(&view.resources);
            if !shown.clone().any(|t| t == target) {
                bail!(
                    "[[views]] {:?}: alias {alias:?} names {target:?}, which the view's tools, \
                     prompts and resources do not list",
                    view.name
                );
            }
            // A resource's alias is a URI: as long as the URIs a backend may list.
            let most = if view.resources.contains(target) {
                2048
            } else {
                64
            };
            if alias.is_empty() || alias.len() > most || shown.clone().any(|t| t == alias) {
                bail!(
                    "[[views]] {:?}: alias {alias:?} must be 1 to {most} characters and differ \
                     from every name the view lists",
                    view.name
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(toml: &str) -> ViewConfig {
        toml::from_str(toml).expect("view parses")
    }

    #[test]
    fn defaults_and_checks() {
        let fed = FederationConfig::default();
        assert_eq!(fed.deadline, Duration::from_secs(2));
        assert_eq!(fed.separator, "__");
        validate(&fed, &[("everything", "everything"), ("py", "py")], &[]).expect("valid");
        let clash = validate(&fed, &[("a__b", "a__b")], &[]).expect_err("separator in prefix");
        assert!(clash.to_string().contains("set `prefix`"), "{clash}");
        let overlap =
            validate(&fed, &[("a_", "a_")], &[]).expect_err("prefix ends like the separator");
        assert!(overlap.to_string().contains("set `prefix`"), "{overlap}");
        validate(&fed, &[("_a", "_a")], &[]).expect("a prefix starting with _ is told apart");
        assert!(validate(&fed, &[("a", "x"), ("b", "x")], &[]).is_err());
        for bad in ["", "::", "123456789", "a b"] {
            let fed = FederationConfig {
                separator: bad.to_owned(),
                ..FederationConfig::default()
            };
            assert!(validate(&fed, &[], &[]).is_err(), "{bad:?}");
        }
        let fed = FederationConfig {
            deadline: Duration::ZERO,
            ..FederationConfig::default()
        };
        assert!(validate(&fed, &[], &[]).is_err());
    }

    #[test]
    fn views_choose_alias_and_are_checked() {
        let v = view(
            r#"name = "support"
               tools = ["everything__echo", "billing__get_invoice"]
               aliases = { say = "everything__echo" }
               descriptions = { say = "Repeats what you say" }"#,
        );
        assert!(v.shows(Listed::Tool, "everything__echo"));
        assert!(!v.shows(Listed::Tool, "everything__add"));
        assert!(!v.shows(Listed::Prompt, "everything__echo"));
        assert_eq!(v.shown_name("everything__echo"), "say");
        assert_eq!(v.shown_name("billing__get_invoice"), "billing__get_invoice");
        assert_eq!(v.federated_name("say"), "everything__echo");
        let fed = FederationConfig::default();
        validate(&fed, &[], std::slice::from_ref(&v)).expect("valid");
        assert!(validate(&fed, &[], &[v.clone(), v.clone()]).is_err());
        let dangling = view(
            r#"name = "x"
                              aliases = { a = "svc__missing" }"#,
        );
        assert!(validate(&fed, &[], &[dangling]).is_err());
        let bad_name = view(r#"name = "a/b""#);
        let resources = view(
            r#"name = "r"
               resources = ["underpass://svc/test://static", "underpass://svc/test://t/{id}/data"]
               aliases = { "test://static" = "underpass://svc/test://static", "test://t/{id}/data" = "underpass://svc/test://t/{id}/data" }"#,
        );
        validate(&fed, &[], std::slice::from_ref(&resources)).expect("resource aliases");
        assert_eq!(
            resources.federated_uri("test://static"),
            "underpass://svc/test://static"
        );
        assert_eq!(
            resources.federated_uri("test://t/7/data"),
            "underpass://svc/test://t/7/data"
        );
        assert_eq!(resources.federated_uri("other://x"), "other://x");
        assert_eq!(
            resources.shown_uri("underpass://svc/test://static"),
            "test://static"
        );
        assert_eq!(
            resources.shown_uri("underpass://svc/test://t/7/data"),
            "test://t/7/data"
        );
        assert_eq!(
            resources.shown_uri("underpass://svc/else"),
            "underpass://svc/else"
        );
        assert!(validate(&fed, &[], &[bad_name]).is_err());
        assert!(toml::from_str::<ViewConfig>("name = \"v\"\nunknown = 1").is_err());
    }
}
