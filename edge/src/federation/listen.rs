//! The federated endpoint's change stream: a 2026-07-28 `subscriptions/listen` (its
//! acknowledgement first, then every notification tagged with the client's subscription id)
//! or a 2025-11-25 client's event stream (`GET` with its session), merged from a stream per
//! service: the backend's own `subscriptions/listen`, or the event stream of the caller's
//! legacy session there ([`upstream::listen`]).
//!
//! Every `list_changed` a backend sends drops that service's cached lists, whether or not the
//! client asked for it; `resources/updated` drops its cached reads and reaches the client with
//! the federated URI (on a view, the view's alias for it), when policy (and the view) let the
//! caller see the resource; a view's subscription names resources by their aliases too. A backend
//! stream that ends or fails is opened again, with a growing pause; while it was down the
//! service's lists may have changed unseen, so they are dropped from the cache then too. The
//! client's stream lasts until the client closes it; its per-service tasks end with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::Response;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use underpass_mcp::federation::notifications::{self, Changed, Filter, Relayed};
use underpass_mcp::federation::uris::{federated_uri, original_uri};
use underpass_mcp::sse::{KEEPALIVE_COMMENT, KEEPALIVE_INTERVAL};

use crate::app::App;
use crate::config::{ServiceConfig, ViewConfig};
use crate::federation::config::Listed;
use crate::federation::lists;
use crate::federation::request::Request;
use crate::federation::upstream::{self, Caller, UpstreamError};
use crate::http::body::Body;
use crate::http::respond::event_stream_response;
use crate::policy::Target;

/// A backend's messages, as they come.
type Messages = futures_util::stream::BoxStream<'static, Value>;
/// The first message of a 2026-07-28 listen stream.
const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";

/// Longest pause before a backend stream that ended is opened again.
const MOST_PAUSE: Duration = Duration::from_secs(30);
/// Messages waiting for a slow client, per stream: beyond, the backends' streams wait.
const QUEUE: usize = 64;

/// Who a stream is for: a 2026-07-28 subscription (its id and what it asked), or a
/// 2025-11-25 client's event stream (every list change, and the updates of the resources it
/// subscribed to through its session).
pub enum Listener {
    Subscription { id: Value, filter: Filter },
    Session,
}

/// One service's part of a stream: what it is asked, and what the client knows it by.
struct Watched {
    service: String,
    prefix: String,
    /// URIs are the backend's own on a bridged single service.
    as_is: bool,
    filter: Filter,
    /// Its resources are the session's subscriptions the edge keeps (see `subscribed`).
    kept: bool,
}

/// Opens the merged stream for `listener`: the acknowledgement (a subscription's), then the
/// services' notifications as they come.
pub async fn serve(req: &Request<'_>, listener: Listener) -> Response<Body> {
    let app = req.app;
    let policy = app.security.policy.get();
    let chosen = lists::services(app, &req.endpoint, &policy, &req.caller.identity);
    let described = upstream::describe_each(app, &chosen, &req.caller).await;
    let (subscription, asked) = match &listener {
        Listener::Subscription { id, filter } => (Some(id.clone()), filter.clone()),
        Listener::Session => (None, Filter::every_list()),
    };
    let as_is = req.endpoint.single.is_some();
    let mut agreed = Filter::default();
    let mut watched = Vec::new();
    for (service, described) in chosen.iter().zip(described) {
        let Some(described) = described else {
            tracing::warn!(service = %service.name, "federated listen: service left out: it did not describe itself in time");
            app.federation.stats.omitted(&service.name, "describe");
            continue;
        };
        let prefix = service.federated_prefix();
        let updates = matches!(listener, Listener::Session)
            && described.capabilities.pointer("/resources/subscribe") == Some(&Value::Bool(true));
        // A 2025-11-25 session's subscriptions at a 2026-07-28-only service are the edge's
        // to ask for (see `subscribed`); the stream follows them as they change.
        let kept = updates && described.modern;
        let uris = if kept {
            kept_uris(
                app,
                &req.caller,
                req.endpoint.view,
                &service.name,
                prefix,
                as_is,
            )
        } else {
            own_uris(req, service, &asked.resource_uris, as_is)
        };
        let filter = asked.for_backend(&described.capabilities, uris);
        if filter.is_empty() && !updates {
            continue;
        }
        let mut shown = filter.clone();
        shown.resource_uris = filter
            .resource_uris
            .iter()
            .map(|u| {
                let uri = client_uri(prefix, u, as_is);
                shown_uri(req.endpoint.view, uri)
            })
            .collect();
        agreed.union(&shown);
        watched.push(Watched {
            service: service.name.clone(),
            prefix: prefix.to_owned(),
            as_is,
            filter,
            kept,
        });
    }
    let changes = watched
        .iter()
        .any(|w| w.kept)
        .then(|| {
            let principal = &req.caller.identity.principal;
            let subscribed = &app.federation.subscribed;
            subscribed.watch(&req.caller.session, principal, Instant::now())
        })
        .flatten();
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut first = Vec::new();
    if let Some(id) = &subscription {
        first.push(notifications::acknowledged(id, &agreed));
    }
    let relays: Vec<(Relay, Watched)> = watched
        .into_iter()
        .map(|w| {
            let relay = Relay {
                app: app.clone(),
                caller: req.caller.clone(),
                view: req.endpoint.view.map(|v| v.name.clone()),
                subscription: subscription.clone(),
                wanted: agreed.clone(),
                all_updates: matches!(listener, Listener::Session),
                tx: tx.clone(),
            };
            (relay, w)
        })
        .collect();
    drop(tx);
    // The backends' streams are open (or late) before the acknowledgement: a change made
    // once the client has it is not lost.
    let deadline = app.config.federation.deadline;
    let opened = futures_util::future::join_all(
        relays
            .iter()
            .map(|(relay, w)| async move { tokio::time::timeout(deadline, relay.open(w)).await }),
    )
    .await;
    let tasks = relays
        .into_iter()
        .zip(opened)
        .map(|((relay, w), opened)| {
            let first = match opened {
                Ok(Ok(messages)) => Some(messages),
                Ok(Err(e)) => {
                    tracing::warn!(service = %w.service, "federated listen: cannot open the service's stream ({e}); retrying");
                    None
                }
                Err(_) => None,
            };
            let changes = changes.clone().filter(|_| w.kept);
            tokio::spawn(relay.run(w, first, changes)).abort_handle()
        })
        .collect();
    event_stream(first, rx, Tasks(tasks))
}

/// The filter's URIs that name `service`'s resources, in the backend's terms, that the caller
/// may see.
fn own_uris(
    req: &Request<'_>,
    service: &ServiceConfig,
    uris: &[String],
    as_is: bool,
) -> Vec<String> {
    let view = req.endpoint.view;
    let prefix = service.federated_prefix();
    uris.iter()
        .filter_map(|u| {
            let federated = view.map_or_else(|| u.clone(), |v| v.federated_uri(u));
            if as_is {
                return Some(federated);
            }
            let (p, original) = original_uri(&federated)?;
            (p == prefix).then(|| original.to_owned())
        })
        .filter(|original| {
            let uri = client_uri(prefix, original, as_is);
            may_see(req.app, &req.caller, view, &service.name, original, &uri)
        })
        .collect()
}

/// The backend URIs the caller's session subscribed to at `service` through the edge, that
/// policy (and the view) still let it see.
fn kept_uris(
    app: &App,
    caller: &Caller,
    view: Option<&ViewConfig>,
    service: &str,
    prefix: &str,
    as_is: bool,
) -> Vec<String> {
    let mut uris = app.federation.subscribed.uris(&caller.session, service);
    uris.retain(|original| {
        let uri = client_uri(prefix, original, as_is);
        may_see(app, caller, view, service, original, &uri)
    });
    uris
}

/// Whether `caller` may see a resource (`original` at `service`, `uri` to the client): by
/// policy, and the view's choice.
fn may_see(
    app: &App,
    caller: &Caller,
    view: Option<&ViewConfig>,
    service: &str,
    original: &str,
    uri: &str,
) -> bool {
    let view_shows = view.is_none_or(|v| v.shows(Listed::Resource, uri));
    let policy = app.security.policy.get();
    let target = Target::Resource(original);
    view_shows
        && policy
            .decide(&caller.identity.principals(), service, &target, None)
            .allowed
}

fn client_uri(prefix: &str, original: &str, as_is: bool) -> String {
    if as_is {
        original.to_owned()
    } else {
        federated_uri(prefix, original)
    }
}

/// The URI the client knows a resource by, given its [`client_uri`]: the view's alias for
/// it, if any.
fn shown_uri(view: Option<&ViewConfig>, uri: String) -> String {
    match view {
        Some(v) => v.shown_uri(&uri),
        None => uri,
    }
}

/// What one service's task needs to relay its notifications to the client.
struct Relay {
    app: Arc<App>,
    caller: Caller,
    view: Option<String>,
    subscription: Option<Value>,
    /// What the client agreed to get (federated URIs).
    wanted: Filter,
    /// A 2025-11-25 stream: every resource update the caller may see (it subscribed through
    /// its session).
    all_updates: bool,
    tx: mpsc::Sender<Value>,
}

impl Relay {
    /// Relays `watched`'s backend stream until the client's stream is gone; with `changes`,
    /// opens it again with the session's subscriptions each time they change (the session's
    /// end leaves none).
    async fn run(
        self,
        mut watched: Watched,
        mut first: Option<Messages>,
        changes: Option<watch::Receiver<()>>,
    ) {
        let Some(mut changes) = changes else {
            return self.follow(&watched, first).await;
        };
        let mut ended = false;
        loop {
            let opened = first.take();
            let followed = async {
                if watched.filter.is_empty() {
                    // Nothing to ask the backend for yet.
                    self.tx.closed().await;
                } else {
                    self.follow(&watched, opened).await;
                }
            };
            let differ = async {
                if ended {
                    return std::future::pending().await;
                }
                loop {
                    if changes.changed().await.is_err() {
                        return None;
                    }
                    let uris = self.kept_uris(&watched);
                    if uris != watched.filter.resource_uris {
                        return Some(uris);
                    }
                }
            };
            let uris = tokio::select! {
                () = followed => return,
                uris = differ => uris,
            };
            ended |= uris.is_none();
            watched.filter.resource_uris = uris.unwrap_or_default();
        }
    }

    fn kept_uris(&self, watched: &Watched) -> Vec<String> {
        let (prefix, as_is) = (&watched.prefix, watched.as_is);
        let view = self.view();
        if self.view.is_some() && view.is_none() {
            return Vec::new();
        }
        kept_uris(
            &self.app,
            &self.caller,
            view,
            &watched.service,
            prefix,
            as_is,
        )
    }

    /// Opens `watched`'s backend stream and relays it, opening it again when it ends, until
    /// the client's stream is gone.
    async fn follow(&self, watched: &Watched, mut first: Option<Messages>) {
        let mut pause = Duration::from_secs(1);
        let mut warned = first.is_none();
        loop {
            let opened = match first.take() {
                Some(messages) => Ok(messages),
                None => self.open(watched).await,
            };
            match opened {
                Ok(mut messages) => {
                    let opened = Instant::now();
                    warned = false;
                    while let Some(msg) = messages.next().await {
                        if !self.relay(watched, &msg).await {
                            return;
                        }
                    }
                    // A stream that ends at once is not a reason to hurry back.
                    if opened.elapsed() > MOST_PAUSE {
                        pause = Duration::from_secs(1);
                    }
                    tracing::debug!(service = %watched.service, "federated listen: the backend's stream ended; opening it again");
                }
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(service = %watched.service, "federated listen: cannot open the service's stream ({e}); retrying");
                }
                Err(e) => {
                    tracing::debug!(service = %watched.service, "federated listen: still cannot open the service's stream: {e}");
                }
            }
            // Changes while the stream was down went unseen.
            self.invalidate(&watched.service, &Changed::ALL);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.tx.closed() => return,
            }
            pause = (pause * 2).min(MOST_PAUSE);
        }
    }

    /// Opens the service's stream; a 2026-07-28 backend's once it has acknowledged. A legacy
    /// session's event stream is shared by the caller's change streams (see [`Fanout`]).
    ///
    /// [`Fanout`]: crate::federation::fanout::Fanout
    async fn open(&self, watched: &Watched) -> Result<Messages, UpstreamError> {
        let plan = upstream::plan(&self.app, &watched.service, &self.caller).await?;
        if !plan.is_modern() {
            let (app, caller) = (&self.app, &self.caller);
            upstream::subscribe(app, &plan, caller, &watched.filter.resource_uris).await;
            let key = (watched.service.clone(), caller.pool_key());
            let open = || async {
                let sent = upstream::listen(app, &plan, caller, &watched.filter).await?;
                Ok(upstream::messages(sent))
            };
            return app.federation.event_streams.join(key, open).await;
        }
        let sent = upstream::listen(&self.app, &plan, &self.caller, &watched.filter).await?;
        let mut messages = upstream::messages(sent);
        match messages.next().await {
            Some(m) if m.get("method").and_then(Value::as_str) == Some(ACKNOWLEDGED) => {
                Ok(messages)
            }
            // No acknowledgement first: taken as it comes.
            Some(m) => Ok(futures_util::stream::iter([m]).chain(messages).boxed()),
            None => Err(UpstreamError::Unreadable(
                "its listen stream ended before acknowledging".into(),
            )),
        }
    }

    /// Relays one message of the backend; `false` once the client's stream is gone.
    async fn relay(&self, watched: &Watched, msg: &Value) -> bool {
        let out = match notifications::classify(msg) {
            Relayed::ListChanged(changed) => {
                self.invalidate(&watched.service, &[changed]);
                self.wanted
                    .wants(changed)
                    .then(|| notifications::list_changed(changed, self.subscription.as_ref()))
            }
            Relayed::ResourceUpdated(original) => {
                if let Ok(mut reads) = self.app.federation.reads.lock() {
                    reads.invalidate(&watched.service, Some("resources/read"));
                }
                let uri = client_uri(&watched.prefix, &original, watched.as_is);
                let view = self.view();
                let shown = shown_uri(view, uri.clone());
                let wanted = if self.all_updates {
                    // Kept subscriptions as they are now: one just ended is not reported,
                    // even if the backend's stream that asked for it is still open.
                    let subscribed = &self.app.federation.subscribed;
                    (!watched.kept
                        || subscribed.has(&self.caller.session, &watched.service, &original))
                        && self.may_see(view, &watched.service, &original, &uri)
                } else {
                    self.wanted.resource_uris.contains(&shown)
                };
                wanted.then(|| notifications::resource_updated(&shown, self.subscription.as_ref()))
            }
            Relayed::Dropped => None,
        };
        match out {
            Some(out) => self.tx.send(out).await.is_ok(),
            None => !self.tx.is_closed(),
        }
    }

    /// The view the stream is on, if any.
    fn view(&self) -> Option<&ViewConfig> {
        let name = self.view.as_ref()?;
        self.app.config.views.iter().find(|v| &v.name == name)
    }

    /// Whether the caller may see a resource (see [`may_see`]; nothing, on a view that is
    /// gone).
    fn may_see(&self, view: Option<&ViewConfig>, service: &str, original: &str, uri: &str) -> bool {
        (self.view.is_none() || view.is_some())
            && may_see(&self.app, &self.caller, view, service, original, uri)
    }

    fn invalidate(&self, service: &str, changed: &[Changed]) {
        if let Ok(mut cache) = self.app.federation.lists.lock() {
            for method in changed.iter().flat_map(|c| c.lists()) {
                cache.invalidate(service, Some(method));
            }
        }
    }
}

/// The services' tasks of one stream: stopped when the client's stream is dropped.
struct Tasks(Vec<AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The client's event stream: `first`, then what the tasks send, with a keep-alive comment
/// when it is idle.
fn event_stream(first: Vec<Value>, rx: mpsc::Receiver<Value>, tasks: Tasks) -> Response<Body> {
    use http_body_util::{BodyExt, StreamBody};
    let event = |msg: &Value| Bytes::from(format!("data: {msg}\n\n"));
    let opening = futures_util::stream::iter(first.iter().map(event).collect::<Vec<_>>());
    let rest = futures_util::stream::unfold((rx, tasks), move |(mut rx, tasks)| async move {
        match tokio::time::timeout(KEEPALIVE_INTERVAL, rx.recv()).await {
            Ok(Some(msg)) => Some((event(&msg), (rx, tasks))),
            // Every service's task ended (none to watch): the stream stays open, idle.
            Ok(None) => {
                tokio::time::sleep(KEEPALIVE_INTERVAL).await;
                Some((Bytes::from_static(KEEPALIVE_COMMENT), (rx, tasks)))
            }
            Err(_) => Some((Bytes::from_static(KEEPALIVE_COMMENT), (rx, tasks))),
        }
    });
    let frames = opening
        .chain(rest)
        .map(|b| Ok::<_, crate::http::body::BodyError>(http_body::Frame::data(b)));
    event_stream_response(BodyExt::boxed_unsync(StreamBody::new(frames)))
}
