//! The open-file limit: raised at start, and what it leaves for client connections.

/// Descriptors kept free of client connections: tunnels, audit files, watched files, admin.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft open-file limit to the hard one ([`underpass_shared::raise_fd_limit`]);
/// returns the limit now in force (None: unlimited or unknown).
pub fn raise_nofile_limit() -> Option<u64> {
    match underpass_shared::raise_fd_limit() {
        Ok(limit) => limit.soft,
        Err(e) => {
            tracing::warn!("cannot raise the open-file limit to the hard limit: {e}");
            let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            now.current
        }
    }
}

/// `[clients] max_connections`, lowered so that client connections cannot take the
/// descriptors the edge needs for everything else.
pub fn connection_cap(configured: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return configured;
    };
    let room = nofile.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    configured.min(room)
}
