//! Federated lists: the same list asked of every service the caller may use at once, under
//! the `[federation] deadline`; each service's whole list read (every page, within bounds)
//! and cached as its backend said (`ttlMs`, `cacheScope`); then, for this caller only, what
//! the policy and the view let it see, renamed (`{prefix}__{name}`, `underpass://` URIs) and
//! cut into the endpoint's own pages.
//!
//! A service that fails or is late is left out with a log line and a metric, or fails the
//! answer when its `on_failure = "fail"`; it never holds the others up past the deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_mcp::federation::caching::{self, CacheScope, Directives};
use underpass_mcp::federation::names::{shown, NameTable};
use underpass_mcp::federation::uris::federated_uri;

use crate::app::App;
use crate::auth::Identity;
use crate::config::{OnFailure, ServiceConfig, ViewConfig};
use crate::federation::config::Listed;
use crate::federation::state::{CacheKey, Federation, Item, Listing, ShortName};
use crate::federation::target::Endpoint;
use crate::federation::upstream::{self, context, Caller, UpstreamError};
use crate::policy::{Policy, Target};

mod page;
pub use page::Split;
use page::{push_json_str, Page};

/// Longest resource URI (or URI template) taken from a backend (bytes).
const MAX_URI: usize = 8 * 1024;

/// The four lists of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl Kind {
    pub fn of(method: &str) -> Option<Kind> {
        Some(match method {
            "tools/list" => Kind::Tools,
            "prompts/list" => Kind::Prompts,
            "resources/list" => Kind::Resources,
            "resources/templates/list" => Kind::Templates,
            _ => return None,
        })
    }

    pub fn method(self) -> &'static str {
        match self {
            Kind::Tools => "tools/list",
            Kind::Prompts => "prompts/list",
            Kind::Resources => "resources/list",
            Kind::Templates => "resources/templates/list",
        }
    }

    /// What one item is called in reports: `tool`, `prompt`, `resource`, `template`.
    pub fn item(self) -> &'static str {
        match self {
            Kind::Tools => "tool",
            Kind::Prompts => "prompt",
            Kind::Resources => "resource",
            Kind::Templates => "template",
        }
    }

    /// The member of the result that holds the items.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources => "resources",
            Kind::Templates => "resourceTemplates",
        }
    }

    /// The member of an item that names it.
    pub(crate) fn id_field(self) -> &'static str {
        match self {
            Kind::Tools | Kind::Prompts => "name",
            Kind::Resources => "uri",
            Kind::Templates => "uriTemplate",
        }
    }

    fn listed(self) -> Listed {
        match self {
            Kind::Tools => Listed::Tool,
            Kind::Prompts => Listed::Prompt,
            Kind::Resources | Kind::Templates => Listed::Resource,
        }
    }

    /// Where a service's whole list of this kind sits in the cache, for `context`.
    fn cache_key<'a>(self, service: &'a ServiceConfig, context: &'a str) -> CacheKey<'a> {
        CacheKey {
            service: &service.name,
            method: self.method(),
            param: "",
            context,
        }
    }

    fn target(self, original: &str) -> Target<'_> {
        match self {
            Kind::Tools => Target::Tool(original),
            Kind::Prompts => Target::Prompt(original),
            Kind::Resources | Kind::Templates => Target::Resource(original),
        }
    }
}

/// The services of an endpoint the caller's policy lets it use at all, in configuration
/// order; a view's are those its entries name.
pub fn services<'a>(
    app: &'a App,
    endpoint: &Endpoint<'a>,
    policy: &Policy,
    identity: &Identity,
) -> Vec<&'a ServiceConfig> {
    let principals = identity.principals();
    let view = endpoint.view;
    if let Some(single) = endpoint.single {
        let allowed = policy
            .decide(&principals, &single.name, &Target::Service, None)
            .allowed;
        return if allowed { vec![single] } else { Vec::new() };
    }
    let sep = &app.config.federation.separator;
    app.config
        .services
        .iter()
        .filter(|s| {
            let prefix = s.federated_prefix();
            view.is_none_or(|v| {
                let name = format!("{prefix}{sep}");
                let uri = federated_uri(prefix, "");
                v.tools
                    .iter()
                    .chain(&v.prompts)
                    .any(|t| t.starts_with(&name))
                    || v.resources.iter().any(|r| r.starts_with(&uri))
            })
        })
        .filter(|s| {
            policy
                .decide(&principals, &s.name, &Target::Service, None)
                .allowed
        })
        .collect()
}

/// A service's whole list for `caller`: from the cache, or read from its backend.
pub async fn listing(
    app: &App,
    service: &ServiceConfig,
    caller: &Caller,
    kind: Kind,
) -> Result<Arc<Listing>, UpstreamError> {
    match cached(app, service, caller, kind) {
        Some(listing) => Ok(listing),
        None => read(app, service, caller, kind).await,
    }
}

/// A service's whole list for `caller`, if the cache holds it (counted as a hit or a miss).
fn cached(app: &App, service: &ServiceConfig, caller: &Caller, kind: Kind) -> Option<Arc<Listing>> {
    let context = context(&caller.identity, &caller.asks);
    let fed = &app.federation;
    fed.lookup(&fed.lists, &kind.cache_key(service, &context))
}

/// A list read from a service's backend counts against the caller's rate there, as the same
/// list on `/mcp/{service}` would (`mcp::judge`): the federated endpoint is no way around a
/// service's rate. A list served from the cache reaches no backend and is not counted.
fn charge(
    app: &App,
    policy: &Policy,
    service: &ServiceConfig,
    caller: &Caller,
) -> Result<(), UpstreamError> {
    let principals = caller.identity.principals();
    let decided = policy.decide(&principals, &service.name, &Target::Service, None);
    let Some(rate) = decided.rate else {
        return Ok(());
    };
    let principal = &caller.identity.principal;
    app.security
        .limiter
        .check(
            principal,
            &service.name,
            &decided.rule,
            &rate,
            Instant::now(),
        )
        .map_err(|retry| UpstreamError::RateLimited {
            rule: decided.rule,
            retry,
        })
}

/// A service's whole list read from its backend, and cached as its hints say.
async fn read(
    app: &App,
    service: &ServiceConfig,
    caller: &Caller,
    kind: Kind,
) -> Result<Arc<Listing>, UpstreamError> {
    let context = context(&caller.identity, &caller.asks);
    let (listing, directives, bytes) = read_all(app, service, caller, kind).await?;
    let listing = Arc::new(listing);
    let key = kind.cache_key(service, &context);
    Federation::keep(
        &app.federation.lists,
        &key,
        directives,
        listing.clone(),
        bytes,
    );
    Ok(listing)
}

/// Reads every page of a service's list, within `[federation]` bounds: pages, items, and a
/// cursor seen twice ends the reading (a backend looping). Returns the listing, the caching
/// hints that hold for all of it (the shortest TTL; private if any page is) and its size.
async fn read_all(
    app: &App,
    service: &ServiceConfig,
    caller: &Caller,
    kind: Kind,
) -> Result<(Listing, Directives, usize), UpstreamError> {
    let fed = &app.config.federation;
    let mut items = Vec::new();
    // Items read, kept or not: what `max_items_per_service` bounds.
    let mut read = 0usize;
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    let mut directives: Option<Directives> = None;
    let mut modern = true;
    for page in 0.. {
        if page == fed.max_pages {
            tracing::warn!(service = %service.name, list = kind.method(), pages = page,
                "federated list: the backend has more pages than [federation] max_pages; the rest is left out");
            break;
        }
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let text =
            upstream::request_text(app, &service.name, caller, kind.method(), params).await?;
        let Page {
            items: page_items,
            rest: result,
        } = Page::read(kind, &text)?;
        modern &= result.get("resultType").is_some() || result.get("ttlMs").is_some();
        let d = caching::directives(&result);
        directives = Some(match directives {
            None => d,
            Some(prev) => Directives {
                ttl: prev.ttl.min(d.ttl),
                scope: if prev.scope == CacheScope::Public && d.scope == CacheScope::Public {
                    CacheScope::Public
                } else {
                    CacheScope::Private
                },
            },
        });
        for item in page_items {
            if read == fed.max_items_per_service {
                tracing::warn!(service = %service.name, list = kind.method(), items = read,
                    "federated list: more items than [federation] max_items_per_service; the rest is left out");
                break;
            }
            read += 1;
            items.extend(item);
        }
        if read == fed.max_items_per_service {
            break;
        }
        cursor = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match &cursor {
            None => break,
            Some(c) if !seen.insert(c.clone()) => {
                tracing::warn!(service = %service.name, list = kind.method(), cursor = %shown(c),
                    "federated list: the backend handed back a cursor it gave before; reading stops there");
                break;
            }
            Some(_) => {}
        }
    }
    let mut directives = directives.unwrap_or(Directives {
        ttl: Duration::ZERO,
        scope: CacheScope::Private,
    });
    if !modern {
        // A legacy backend gives no hints: the operator's default, per caller.
        directives = Directives {
            ttl: fed.default_ttl,
            scope: CacheScope::Private,
        };
    }
    let names = match kind {
        Kind::Tools | Kind::Prompts => {
            let listed = items.iter().map(|i| i.original.as_str());
            let (table, dropped) =
                NameTable::build(service.federated_prefix(), &fed.separator, listed);
            if !dropped.is_empty() {
                let shown: Vec<String> = dropped
                    .iter()
                    .take(10)
                    .map(|d| format!("{} ({})", d.shown, d.why))
                    .collect();
                tracing::warn!(service = %service.name, list = kind.method(), dropped = dropped.len(),
                    "federated list: names left out: {}", shown.join(", "));
            }
            let found = table
                .shortened()
                .into_iter()
                .map(|(federated, original)| ShortName {
                    kind: kind.item(),
                    original: original.to_owned(),
                    federated: federated.to_owned(),
                })
                .collect();
            // Logged once per mapping (at start, see `shortened`, or when first read).
            let new = app
                .federation
                .shortened
                .learn(&service.name, kind.item(), found);
            for n in new {
                tracing::info!(service = %service.name, kind = %n.kind, federated = %n.federated,
                    original = %shown(&n.original), "federated name shortened to 64 characters");
            }
            table
        }
        Kind::Resources | Kind::Templates => NameTable::default(),
    };
    let listing = prepare(kind, service.federated_prefix(), items, names);
    let bytes = listing.items.iter().map(Item::size).sum();
    Ok((listing, directives, bytes))
}

/// A service's items as they are kept: federated and serialized once. Left out: names the
/// table dropped, and URIs that are empty, over [`MAX_URI`] or hold control characters.
pub fn prepare(kind: Kind, prefix: &str, items: Vec<Split>, names: NameTable) -> Listing {
    let mut kept = Vec::with_capacity(items.len());
    for Split {
        original,
        description,
        rest,
    } in items
    {
        let federated = match kind {
            Kind::Tools | Kind::Prompts => match names.federated(&original) {
                Some(f) => f.to_owned(),
                None => continue,
            },
            Kind::Resources | Kind::Templates => {
                if original.is_empty()
                    || original.len() > MAX_URI
                    || original.chars().any(char::is_control)
                {
                    continue;
                }
                federated_uri(prefix, &original)
            }
        };
        kept.push(Item {
            original,
            federated,
            description,
            rest,
        });
    }
    Listing { items: kept, names }
}

/// The caller's view of one service's list: what the policy and the view show, renamed
/// (or, `as_is`, under the backend's own names: one service bridged across eras), each item
/// as JSON text.
pub fn federate(
    kind: Kind,
    listing: &Listing,
    view: Option<&ViewConfig>,
    as_is: bool,
    visible: impl Fn(&Target<'_>) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for item in &listing.items {
        if !visible(&kind.target(&item.original)) {
            continue;
        }
        let federated = if as_is {
            &item.original
        } else {
            &item.federated
        };
        if view.is_some_and(|v| !v.shows(kind.listed(), federated)) {
            continue;
        }
        let shown = view.map_or(federated.as_str(), |v| v.shown_name(federated));
        let description = view.and_then(|v| v.descriptions.get(shown));
        out.push(render(kind.id_field(), shown, description, item));
    }
    out
}

/// One item as JSON text: its shown name or URI, its description (the view's, else the
/// backend's), then the backend's other members.
fn render(id: &str, shown: &str, description: Option<&String>, item: &Item) -> String {
    let mut s = String::with_capacity(item.size() + shown.len());
    s.push('{');
    push_json_str(&mut s, id);
    s.push(':');
    push_json_str(&mut s, shown);
    if let Some(d) = description {
        s.push_str(",\"description\":");
        push_json_str(&mut s, d);
    } else if let Some(d) = &item.description {
        s.push_str(",\"description\":");
        s.push_str(d);
    }
    if !item.rest.is_empty() {
        s.push(',');
        s.push_str(&item.rest);
    }
    s.push('}');
    s
}

/// The whole JSON-RPC answer to a list request as JSON text: `items` (each JSON text) under
/// `key`, beside the members of `rest` (an object: `nextCursor`, hints, `_meta`...), so that
/// the items are never parsed again.
pub fn answer(id: Option<&Value>, key: &str, items: &[String], rest: &Value) -> String {
    let size: usize = items.iter().map(|i| i.len() + 1).sum();
    let mut s = String::with_capacity(size + 256);
    s.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    s.push_str(&id.map_or_else(|| "null".to_owned(), Value::to_string));
    s.push_str(",\"result\":{");
    push_json_str(&mut s, key);
    s.push_str(":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item);
    }
    s.push(']');
    if let Value::Object(members) = rest {
        if !members.is_empty() {
            let text = rest.to_string();
            s.push(',');
            s.push_str(text.get(1..text.len() - 1).unwrap_or_default());
        }
    }
    s.push_str("}}");
    s
}

/// Why a federated list has no answer.
pub struct Failed {
    pub service: String,
    pub error: UpstreamError,
}

/// Every item the caller may see, over the endpoint's services, in configuration order.
pub async fn gather(
    app: &App,
    endpoint: &Endpoint<'_>,
    policy: &Policy,
    caller: &Caller,
    kind: Kind,
) -> Result<Vec<String>, Failed> {
    let chosen = services(app, endpoint, policy, &caller.identity);
    let (view, as_is) = (endpoint.view, endpoint.single.is_some());
    let deadline = app.config.federation.deadline;
    let asked = chosen.iter().map(|s| async move {
        let listed = async {
            if let Some(listing) = cached(app, s, caller, kind) {
                return Ok(listing);
            }
            charge(app, policy, s, caller)?;
            read(app, s, caller, kind).await
        };
        match tokio::time::timeout(deadline, listed).await {
            Ok(r) => r.map_err(Omission::Failed),
            Err(_) => Err(Omission::Late),
        }
    });
    let answers = futures_util::future::join_all(asked).await;
    let principals = caller.identity.principals();
    let mut items = Vec::new();
    for (service, answer) in chosen.iter().zip(answers) {
        match answer {
            Ok(listing) => {
                let visible = |t: &Target<'_>| policy.visible(&principals, &service.name, t);
                items.extend(federate(kind, &listing, view, as_is, visible));
            }
            Err(omission) => {
                let reason = omission.reason();
                let error = omission.error(deadline);
                if service.on_failure == OnFailure::Fail {
                    return Err(Failed {
                        service: service.name.clone(),
                        error,
                    });
                }
                // A caller over its rate is its own doing: not worth a warning per request.
                if matches!(error, UpstreamError::RateLimited { .. }) {
                    tracing::debug!(service = %service.name, list = kind.method(), reason,
                        "federated list: service left out of the answer: {error}");
                } else {
                    tracing::warn!(service = %service.name, list = kind.method(), reason,
                        "federated list: service left out of the answer: {error}");
                }
                app.federation.stats.omitted(&service.name, reason);
            }
        }
    }
    Ok(items)
}

enum Omission {
    Failed(UpstreamError),
    Late,
}

impl Omission {
    fn reason(&self) -> &'static str {
        match self {
            Omission::Failed(e) => e.reason(),
            Omission::Late => "deadline",
        }
    }

    fn error(self, deadline: Duration) -> UpstreamError {
        match self {
            Omission::Failed(e) => e,
            Omission::Late => UpstreamError::Unreadable(format!(
                "no answer within the [federation] deadline of {deadline:?}"
            )),
        }
    }
}

/// Items `offset..offset + size` and the offset of the next page, if any.
pub fn page<T>(mut items: Vec<T>, offset: usize, size: usize) -> (Vec<T>, Option<usize>) {
    if offset >= items.len() {
        return (Vec::new(), None);
    }
    let end = offset.saturating_add(size).min(items.len());
    let more = (end < items.len()).then_some(end);
    items.truncate(end);
    (items.split_off(offset), more)
}

#[cfg(test)]
mod tests;
