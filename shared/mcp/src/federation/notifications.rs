//! What a federated listen stream carries: the client's subscription filter (2026-07-28
//! `subscriptions/listen`), what each backend's notification means for it, and the messages
//! the edge writes on the client's stream. Plain functions of their input.
//!
//! Only `list_changed` and `resources/updated` travel on a listen stream; progress and log
//! notifications belong to the stream of their own request and are dropped here.

use serde_json::{json, Map, Value};

/// The `_meta` key tagging every message of a subscription with the listen request's id.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// Most resource URIs one subscription may name; further ones are not honoured (the ack says
/// which are).
pub const MAX_RESOURCE_SUBSCRIPTIONS: usize = 1024;
/// Longest resource URI a subscription may name.
pub const MAX_URI: usize = 4096;

/// Which list a `list_changed` notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Changed {
    Tools,
    Prompts,
    Resources,
}

impl Changed {
    pub const ALL: [Changed; 3] = [Changed::Tools, Changed::Prompts, Changed::Resources];

    /// The notification's method.
    pub fn method(self) -> &'static str {
        match self {
            Changed::Tools => "notifications/tools/list_changed",
            Changed::Prompts => "notifications/prompts/list_changed",
            Changed::Resources => "notifications/resources/list_changed",
        }
    }

    /// The list methods whose results the change makes stale.
    pub fn lists(self) -> &'static [&'static str] {
        match self {
            Changed::Tools => &["tools/list"],
            Changed::Prompts => &["prompts/list"],
            Changed::Resources => &["resources/list", "resources/templates/list"],
        }
    }

    /// The filter flag (2026-07-28 `SubscriptionFilter`) and capability that name it.
    fn flag(self) -> &'static str {
        match self {
            Changed::Tools => "toolsListChanged",
            Changed::Prompts => "promptsListChanged",
            Changed::Resources => "resourcesListChanged",
        }
    }

    fn capability(self) -> &'static str {
        match self {
            Changed::Tools => "tools",
            Changed::Prompts => "prompts",
            Changed::Resources => "resources",
        }
    }
}

/// A `SubscriptionFilter`: what a listen stream reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    /// URIs whose `resources/updated` the stream reports.
    pub resource_uris: Vec<String>,
}

impl Filter {
    /// The filter of a `subscriptions/listen` request's params. Flags that are not `true`
    /// are off; URIs that are not strings, are empty or too long, or come beyond
    /// [`MAX_RESOURCE_SUBSCRIPTIONS`] are not honoured.
    pub fn of_params(params: Option<&Value>) -> Filter {
        let notifications = params.and_then(|p| p.get("notifications"));
        let on = |flag: &str| {
            notifications
                .and_then(|n| n.get(flag))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let mut resource_uris: Vec<String> = notifications
            .and_then(|n| n.get("resourceSubscriptions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|u| !u.is_empty() && u.len() <= MAX_URI)
            .map(str::to_owned)
            .take(MAX_RESOURCE_SUBSCRIPTIONS)
            .collect();
        resource_uris.dedup();
        Filter {
            tools: on(Changed::Tools.flag()),
            prompts: on(Changed::Prompts.flag()),
            resources: on(Changed::Resources.flag()),
            resource_uris,
        }
    }

    /// Every list change and no resource: what a 2025-11-25 client's event stream gets.
    pub fn every_list() -> Filter {
        Filter {
            tools: true,
            prompts: true,
            resources: true,
            resource_uris: Vec::new(),
        }
    }

    pub fn wants(&self, changed: Changed) -> bool {
        match changed {
            Changed::Tools => self.tools,
            Changed::Prompts => self.prompts,
            Changed::Resources => self.resources,
        }
    }

    /// The part of the filter a backend can honour, from the capabilities it declared:
    /// `{tools,prompts,resources}.listChanged` and `resources.subscribe`. `uris` are the
    /// filter's URIs in the backend's own terms.
    pub fn for_backend(&self, capabilities: &Value, uris: Vec<String>) -> Filter {
        let can = |changed: Changed| {
            capabilities
                .pointer(&format!("/{}/listChanged", changed.capability()))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let subscribe = capabilities
            .pointer("/resources/subscribe")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Filter {
            tools: self.tools && can(Changed::Tools),
            prompts: self.prompts && can(Changed::Prompts),
            resources: self.resources && can(Changed::Resources),
            resource_uris: if subscribe { uris } else { Vec::new() },
        }
    }

    /// Whether nothing is asked.
    pub fn is_empty(&self) -> bool {
        !self.tools && !self.prompts && !self.resources && self.resource_uris.is_empty()
    }

    /// Everything either filter asks.
    pub fn union(&mut self, other: &Filter) {
        self.tools |= other.tools;
        self.prompts |= other.prompts;
        self.resources |= other.resources;
        for uri in &other.resource_uris {
            if !self.resource_uris.contains(uri) {
                self.resource_uris.push(uri.clone());
            }
        }
    }

    /// The filter as a `SubscriptionFilter` object (flags that are off are left out).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for changed in Changed::ALL {
            if self.wants(changed) {
                m.insert(changed.flag().into(), Value::Bool(true));
            }
        }
        if !self.resource_uris.is_empty() {
            m.insert("resourceSubscriptions".into(), json!(self.resource_uris));
        }
        Value::Object(m)
    }
}

/// What a message from a backend's stream means for a listen stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    /// A list of the backend changed.
    ListChanged(Changed),
    /// A resource changed: its URI in the backend's terms.
    ResourceUpdated(String),
    /// Anything else (the backend's own acknowledgement, progress, logs, requests,
    /// responses): not for the client's stream.
    Dropped,
}

/// What a message a backend sent on its listen or event stream is.
pub fn classify(msg: &Value) -> Relayed {
    if msg.get("id").is_some() {
        return Relayed::Dropped;
    }
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    if let Some(changed) = Changed::ALL.into_iter().find(|c| c.method() == method) {
        return Relayed::ListChanged(changed);
    }
    if method == "notifications/resources/updated" {
        if let Some(uri) = msg
            .pointer("/params/uri")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty() && u.len() <= MAX_URI)
        {
            return Relayed::ResourceUpdated(uri.to_owned());
        }
    }
    Relayed::Dropped
}

/// `params._meta` tagging a message with its subscription (none for a 2025-11-25 stream).
fn tagged(mut params: Map<String, Value>, subscription: Option<&Value>) -> Value {
    if let Some(id) = subscription {
        params.insert("_meta".into(), json!({ SUBSCRIPTION_ID: id }));
    }
    Value::Object(params)
}

/// The first message of a subscription: what it will report.
pub fn acknowledged(subscription: &Value, filter: &Filter) -> Value {
    let mut params = Map::new();
    params.insert("notifications".into(), filter.to_json());
    json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": tagged(params, Some(subscription)),
    })
}

/// A `list_changed` notification for the client's stream.
pub fn list_changed(changed: Changed, subscription: Option<&Value>) -> Value {
    let mut msg = json!({"jsonrpc": "2.0", "method": changed.method()});
    if subscription.is_some() {
        msg["params"] = tagged(Map::new(), subscription);
    }
    msg
}

/// A `resources/updated` notification for the client's stream, with the URI it knows.
pub fn resource_updated(uri: &str, subscription: Option<&Value>) -> Value {
    let mut params = Map::new();
    params.insert("uri".into(), Value::from(uri));
    json!({
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": tagged(params, subscription),
    })
}

/// The graceful end of a subscription the server closes.
pub fn completed(subscription: &Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": subscription,
        "result": {"resultType": "complete", "_meta": { SUBSCRIPTION_ID: subscription }},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_honours_only_true_flags_and_string_uris() {
        let f = Filter::of_params(Some(&json!({"notifications": {
            "toolsListChanged": true, "promptsListChanged": "yes", "resourcesListChanged": false,
            "resourceSubscriptions": ["a://1", 7, "", "a://1", "x".repeat(MAX_URI + 1)],
        }})));
        assert_eq!(
            f,
            Filter {
                tools: true,
                prompts: false,
                resources: false,
                resource_uris: vec!["a://1".into()],
            }
        );
        assert_eq!(
            f.to_json(),
            json!({"toolsListChanged": true, "resourceSubscriptions": ["a://1"]})
        );
        assert!(Filter::of_params(None).is_empty());
        assert!(Filter::of_params(Some(&json!({"notifications": 3}))).is_empty());
        let many: Vec<String> = (0..5000).map(|i| format!("u://{i}")).collect();
        let f = Filter::of_params(Some(
            &json!({"notifications": {"resourceSubscriptions": many}}),
        ));
        assert_eq!(f.resource_uris.len(), MAX_RESOURCE_SUBSCRIPTIONS);
    }

    #[test]
    fn a_backend_is_asked_only_what_it_declared() {
        let asked = Filter {
            tools: true,
            prompts: true,
            resources: true,
            resource_uris: vec!["u://1".into()],
        };
        let caps = json!({"tools": {"listChanged": true}, "prompts": {}, "resources": {"subscribe": false}});
        let f = asked.for_backend(&caps, vec!["b://1".into()]);
        assert_eq!(f.to_json(), json!({"toolsListChanged": true}));
        let caps = json!({"resources": {"subscribe": true, "listChanged": true}});
        let f = asked.for_backend(&caps, vec!["b://1".into()]);
        assert_eq!(
            f.to_json(),
            json!({"resourcesListChanged": true, "resourceSubscriptions": ["b://1"]})
        );
        let mut all = Filter::default();
        all.union(&f);
        all.union(&f);
        assert_eq!(all, f);
    }

    #[test]
    fn only_list_changes_and_resource_updates_are_relayed() {
        for changed in Changed::ALL {
            let msg = json!({"jsonrpc": "2.0", "method": changed.method(), "params": {}});
            assert_eq!(classify(&msg), Relayed::ListChanged(changed));
        }
        let updated =
            json!({"method": "notifications/resources/updated", "params": {"uri": "b://1"}});
        assert_eq!(classify(&updated), Relayed::ResourceUpdated("b://1".into()));
        for msg in [
            json!({"method": "notifications/resources/updated", "params": {"uri": 5}}),
            json!({"method": "notifications/resources/updated"}),
            json!({"method": "notifications/progress", "params": {"progress": 1}}),
            json!({"method": "notifications/message", "params": {"level": "info"}}),
            json!({"method": "notifications/subscriptions/acknowledged", "params": {}}),
            json!({"id": 1, "method": "notifications/tools/list_changed"}),
            json!({"id": 1, "result": {}}),
            json!("text"),
            Value::Null,
        ] {
            assert_eq!(classify(&msg), Relayed::Dropped, "{msg}");
        }
    }

    #[test]
    fn client_messages_carry_the_subscription_id() {
        let id = json!(7);
        let ack = acknowledged(&id, &Filter::every_list());
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], 7);
        assert_eq!(ack["params"]["notifications"]["toolsListChanged"], true);
        let m = list_changed(Changed::Prompts, Some(&id));
        assert_eq!(m["method"], "notifications/prompts/list_changed");
        assert_eq!(m["params"]["_meta"][SUBSCRIPTION_ID], 7);
        assert!(list_changed(Changed::Tools, None).get("params").is_none());
        let u = resource_updated("underpass://s/b://1", Some(&id));
        assert_eq!(u["params"]["uri"], "underpass://s/b://1");
        assert_eq!(u["params"]["_meta"][SUBSCRIPTION_ID], 7);
        let end = completed(&id);
        assert_eq!(end["id"], 7);
        assert_eq!(end["result"]["resultType"], "complete");
    }
}
