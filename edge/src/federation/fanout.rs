//! One backend stream, read once, handed to every listener that wants it.
//!
//! A 2025-11-25 backend keeps one `GET` event stream per session, and the edge holds one
//! session per service and caller: two change streams of one caller (on `/mcp` and on a view,
//! say) must share that event stream, or the second would take it from the first (or be
//! refused). A [`Fanout`] keeps, per key, the stream that is running: the first listener
//! opens it and a task pumps its messages to every listener; later listeners join it. The
//! task ends with the backend's stream or once no listener is left, and the next listener
//! opens it again. A listener that falls behind loses its place: its stream ends, and it
//! opens (or joins) again, as after any break.
//! A leaf: `App` holds it; it knows nothing of the edge.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::broadcast;

/// Messages a listener may fall behind by before it loses its place.
const BACKLOG: usize = 64;
/// How often a pump with no message to hand on looks whether anyone still listens.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// A running stream's sender; `None` while none runs (or while it is being opened).
type Slot = Arc<tokio::sync::Mutex<Option<broadcast::Sender<Value>>>>;

/// The running streams, by key (service and principal).
#[derive(Default)]
pub struct Fanout {
    slots: Arc<Mutex<HashMap<(String, String), Slot>>>,
}

impl Fanout {
    /// A listener's view of the stream for `key`: the one running, or the one `open` opens
    /// (listeners of one key wait for each other's opening, so only one is opened).
    pub async fn join<E, Fut>(
        &self,
        key: (String, String),
        open: impl FnOnce() -> Fut,
    ) -> Result<BoxStream<'static, Value>, E>
    where
        Fut: Future<Output = Result<BoxStream<'static, Value>, E>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(key.clone()).or_default().clone()
        };
        let mut running = slot.lock().await;
        if let Some(tx) = running.as_ref() {
            return Ok(listener(tx.subscribe()));
        }
        let messages = match open().await {
            Ok(messages) => messages,
            Err(e) => {
                forget(&self.slots, &key, &slot);
                return Err(e);
            }
        };
        let (tx, rx) = broadcast::channel(BACKLOG);
        *running = Some(tx.clone());
        drop(running);
        tokio::spawn(pump(messages, tx, self.slots.clone(), key, slot));
        Ok(listener(rx))
    }

    /// Whether no stream is running or being opened.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.slots.lock().map_or(true, |s| s.is_empty())
    }
}

/// Hands the backend's messages on until its stream ends or no listener is left, then
/// forgets the stream.
async fn pump(
    mut messages: BoxStream<'static, Value>,
    tx: broadcast::Sender<Value>,
    slots: Arc<Mutex<HashMap<(String, String), Slot>>>,
    key: (String, String),
    slot: Slot,
) {
    loop {
        tokio::select! {
            next = messages.next() => {
                // The stream ended, or no listener is left to take the message.
                if next.is_none_or(|msg| tx.send(msg).is_err()) {
                    break;
                }
            }
            () = tokio::time::sleep(IDLE_CHECK) => {
                if tx.receiver_count() == 0 {
                    break;
                }
            }
        }
    }
    let mut running = slot.lock().await;
    if running.as_ref().is_some_and(|r| r.same_channel(&tx)) {
        *running = None;
        forget(&slots, &key, &slot);
    }
}

/// Drops `key`'s slot, if it is still `slot`.
fn forget(slots: &Mutex<HashMap<(String, String), Slot>>, key: &(String, String), slot: &Slot) {
    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
    if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
        slots.remove(key);
    }
}

/// A listener's messages: ends when the stream does, or when the listener fell behind.
fn listener(rx: broadcast::Receiver<Value>) -> BoxStream<'static, Value> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.ok().map(|msg| (msg, rx))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::sync::mpsc;

    fn key() -> (String, String) {
        ("svc".into(), "alice".into())
    }

    /// A backend stream fed by the test.
    fn backend() -> (mpsc::UnboundedSender<Value>, BoxStream<'static, Value>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        (tx, stream)
    }

    #[tokio::test]
    async fn two_listeners_share_one_opened_stream_and_it_is_forgotten_when_it_ends() {
        let fanout = Fanout::default();
        let (feed, stream) = backend();
        let mut stream = Some(stream);
        let opened = std::cell::Cell::new(0);
        let open = || {
            opened.set(opened.get() + 1);
            let s = stream.take();
            async move { s.ok_or("opened twice") }
        };
        let mut first = fanout.join(key(), open).await.unwrap();
        let mut second = fanout
            .join(key(), || async {
                Err::<BoxStream<'static, Value>, _>("opened twice")
            })
            .await
            .unwrap();
        assert_eq!(opened.get(), 1);
        feed.send(json!(1)).unwrap();
        assert_eq!(first.next().await, Some(json!(1)));
        assert_eq!(second.next().await, Some(json!(1)));
        drop(feed);
        assert_eq!(first.next().await, None);
        assert_eq!(second.next().await, None);
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if fanout.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(fanout.is_empty(), "the ended stream is forgotten");
        // The next listener opens it again.
        let (_feed, again) = backend();
        let third = fanout.join(key(), || async { Ok::<_, &str>(again) }).await;
        assert!(third.is_ok());
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_loses_its_place_the_others_keep_theirs() {
        let fanout = Fanout::default();
        let (feed, stream) = backend();
        let mut slow = fanout
            .join(key(), || async { Ok::<_, &str>(stream) })
            .await
            .unwrap();
        let mut quick = fanout
            .join(key(), || async {
                Err::<BoxStream<'static, Value>, _>("opened twice")
            })
            .await
            .unwrap();
        for i in 0..BACKLOG * 2 {
            feed.send(json!(i)).unwrap();
            assert_eq!(quick.next().await, Some(json!(i)));
        }
        assert_eq!(slow.next().await, None, "fell behind: its stream ends");
        feed.send(json!("later")).unwrap();
        assert_eq!(quick.next().await, Some(json!("later")));
    }

    #[tokio::test]
    async fn a_failed_opening_leaves_the_next_listener_to_open() {
        let fanout = Fanout::default();
        let failed = fanout
            .join(key(), || async {
                Err::<BoxStream<'static, Value>, _>("refused")
            })
            .await;
        assert!(failed.is_err());
        assert!(fanout.is_empty(), "nothing kept of a failed opening");
        let (_feed, stream) = backend();
        assert!(fanout
            .join(key(), || async { Ok::<_, &str>(stream) })
            .await
            .is_ok());
    }
}
