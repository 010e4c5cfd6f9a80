//! Graceful drain on SIGTERM: one flag the whole edge watches. Once it is up, `/readyz` says
//! 503, the client listener closes once no connection came for a moment (those a load
//! balancer sent before it saw the 503 are served), client connections close as soon as each is between
//! requests, the tunnels' connectors are told ([`underpass_proto::control::Draining`]), and
//! `run` waits for the connections left, up to `drain_grace`, before it closes the tunnels.
//! A leaf: it knows nothing of what watches it.

use std::time::Duration;

use tokio::sync::watch;

/// Whether the edge is draining, and for how long it may; cheap to clone, shared by
/// everything that reacts to it.
#[derive(Debug, Clone)]
pub struct Drain {
    flag: watch::Sender<bool>,
    grace: Duration,
}

impl Drain {
    /// Not draining yet; once started, in-flight work gets `grace` (`drain_grace`).
    pub fn new(grace: Duration) -> Self {
        Drain {
            flag: watch::channel(false).0,
            grace,
        }
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Starts the drain; `false` if it had started already.
    pub fn start(&self) -> bool {
        self.flag
            .send_if_modified(|draining| !std::mem::replace(draining, true))
    }

    pub fn is_draining(&self) -> bool {
        *self.flag.borrow()
    }

    /// Returns once the drain has started (at once if it has).
    pub async fn started(&self) {
        let mut flag = self.flag.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = flag.wait_for(|draining| *draining).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Drain;

    #[tokio::test]
    async fn starts_once_and_wakes_every_watcher() {
        let drain = Drain::new(std::time::Duration::from_secs(1));
        assert!(!drain.is_draining());
        let watcher = tokio::spawn({
            let drain = drain.clone();
            async move { drain.started().await }
        });
        tokio::task::yield_now().await;
        assert!(!watcher.is_finished());
        assert!(drain.start());
        assert!(!drain.start(), "a second start changes nothing");
        watcher.await.unwrap();
        assert!(drain.is_draining());
        // A watcher that comes late returns at once.
        drain.started().await;
    }
}
