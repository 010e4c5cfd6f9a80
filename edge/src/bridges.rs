//! The table of open 2024-11-05 HTTP+SSE bridges (served by `mcp::legacy_sse`): a leaf,
//! so that the application state can hold it without depending on the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::auth::Identity;
use crate::tunnels::registry::{SessionSlot, Tunnel};

/// One client event stream, pinned to a tunnel and bound to the principal that opened it.
pub struct Bridge {
    /// The `sessionId` the client was given.
    pub id: String,
    pub service: String,
    pub identity: Identity,
    pub tunnel: Arc<Tunnel>,
    pub events: mpsc::Sender<Bytes>,
    /// Forwarding headers from what the edge saw of the client's `GET` (peer address, scheme,
    /// host), sent with every exchange of the bridge.
    pub forwarded: Vec<(String, Vec<u8>)>,
    /// The backend's `Mcp-Session-Id` and negotiated version, once `initialize` returned.
    pub backend: Mutex<(Option<String>, Option<String>)>,
    /// Counts against the principal's `[clients] max_sessions_per_principal`.
    pub _slot: SessionSlot,
}

#[derive(Default)]
pub struct Bridges {
    map: Mutex<HashMap<String, Arc<Bridge>>>,
}

impl Bridges {
    pub fn get(&self, id: &str) -> Option<Arc<Bridge>> {
        self.map.lock().ok()?.get(id).cloned()
    }
    pub fn remove(&self, id: &str) -> Option<Arc<Bridge>> {
        self.map.lock().ok()?.remove(id)
    }
    pub fn insert(&self, id: String, bridge: Arc<Bridge>) {
        if let Ok(mut map) = self.map.lock() {
            map.insert(id, bridge);
        }
    }
}
