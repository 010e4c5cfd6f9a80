//! Request bodies: the bytes held at once, all clients together, and the deadline for
//! receiving one.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bytes of request bodies the edge holds at once, in KiB permits.
pub struct BodyBudget {
    permits: Arc<Semaphore>,
}

/// Why a request body was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BodyRefused {
    #[error("request body exceeds the edge's limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the edge holds as many request bodies as it may ([clients] max_buffered_body_bytes); retry shortly")]
    OverBudget,
    #[error("request body not received within {0:?} ([clients] body_timeout)")]
    TimedOut(Duration),
    #[error("could not read request body: {0}")]
    Read(String),
}

fn kib(bytes: usize) -> Option<u32> {
    u32::try_from(bytes.div_ceil(1024)).ok()
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        let permits = (bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// KiB still free.
    pub fn available_kib(&self) -> usize {
        self.permits.available_permits()
    }

    fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BodyRefused> {
        let n = kib(bytes).ok_or(BodyRefused::OverBudget)?;
        self.permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| BodyRefused::OverBudget)
    }
}

/// A received body and its share of the budget, released when the last `Bytes` of it drops.
struct Held {
    bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads a whole request body of at most `limit` bytes within `deadline`, holding its size
/// from `budget` (all of a declared `Content-Length` up front, else as it arrives) until
/// the returned bytes are dropped. Never waits for budget: over it, [`BodyRefused::OverBudget`].
pub async fn read_body<B>(
    body: &mut B,
    limit: usize,
    budget: &BodyBudget,
    deadline: Duration,
) -> Result<Bytes, BodyRefused>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let declared = body
        .size_hint()
        .exact()
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyRefused::TooLarge { limit });
    }
    let mut permit = budget.take(declared.unwrap_or(0))?;
    let receive = async {
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyRefused::Read(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if buf.len() + data.len() > limit {
                return Err(BodyRefused::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
            let held = permit.num_permits();
            let needed = kib(buf.len()).ok_or(BodyRefused::OverBudget)? as usize;
            if needed > held {
                permit.merge(budget.take((needed - held) * 1024)?);
            }
        }
        Ok(buf.freeze())
    };
    let bytes = match tokio::time::timeout(deadline, receive).await {
        Ok(r) => r?,
        Err(_) => return Err(BodyRefused::TimedOut(deadline)),
    };
    Ok(Bytes::from_owner(Held {
        bytes,
        _permit: permit,
    }))
}
