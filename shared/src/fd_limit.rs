//! The open-file limit: raised once at start, so descriptors run out after memory does.

/// The soft and hard `RLIMIT_NOFILE` after [`raise_fd_limit`] (`None` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before the call.
    pub before: Option<u64>,
    /// The soft limit now in force.
    pub soft: Option<u64>,
    /// The hard limit (the ceiling the soft limit was raised to).
    pub hard: Option<u64>,
}

/// Raises this process's soft limit of open file descriptors (`RLIMIT_NOFILE`) to its hard
/// limit. Each client connection, tunnel stream bridged to a backend connection, and stdio
/// pipe costs a descriptor; the usual soft default of 1,024 is reached long before memory or
/// CPU run out. Call it once at start, before serving.
pub fn raise_fd_limit() -> std::io::Result<FdLimit> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let before = current.current;
    if before != current.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: current.maximum,
                maximum: current.maximum,
            },
        )?;
    }
    let now = getrlimit(Resource::Nofile);
    Ok(FdLimit {
        before,
        soft: now.current,
        hard: now.maximum,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fd_limit_is_raised_to_the_hard_limit() {
        // (Lowering the limit first would starve tests running in parallel; the end-to-end
        // test starts the connector under a low soft limit instead.)
        let limit = super::raise_fd_limit().expect("raise_fd_limit");
        assert_eq!(limit.soft, limit.hard, "{limit:?}");
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, now.maximum);
    }
}
