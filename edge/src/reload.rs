//! The hot-reload primitive lives in `underpass-shared` (the connector needs it too); this
//! re-export keeps the edge's `crate::reload::…` paths working.

pub use underpass_shared::reload::*;
