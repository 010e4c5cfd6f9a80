//! Which endpoint a client request path names. Pure: no state, no I/O.

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Service(&'a str),
    LegacySse(&'a str),
    /// `/mcp`: every service the caller may use, as one MCP server.
    Federated,
    /// `/mcp/view/{name}`: a curated view of the federated endpoint.
    View(&'a str),
    NotFound,
}

pub fn route(path: &str) -> Route<'_> {
    match path.strip_prefix("/mcp") {
        Some("" | "/") => Route::Federated,
        Some(rest) => {
            let Some(rest) = rest.strip_prefix('/') else {
                return Route::NotFound;
            };
            match rest.split_once('/') {
                None if !rest.is_empty() => Route::Service(rest),
                Some(("view", name)) if !name.is_empty() && !name.contains('/') => {
                    Route::View(name)
                }
                Some((svc, "sse")) if !svc.is_empty() => Route::LegacySse(svc),
                _ => Route::NotFound,
            }
        }
        None => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/mcp/everything"), Route::Service("everything"));
        assert_eq!(route("/mcp/everything/sse"), Route::LegacySse("everything"));
        assert_eq!(route("/mcp"), Route::Federated);
        assert_eq!(route("/mcp/"), Route::Federated);
        assert_eq!(route("/mcp/view/support"), Route::View("support"));
        for p in [
            "/",
            "/mcpx",
            "/mcp//sse",
            "/mcp/a/b",
            "/mcp/a/sse/x",
            "/mcp/view/",
            "/mcp/view/a/b",
            "/other",
        ] {
            assert_eq!(route(p), Route::NotFound, "{p}");
        }
    }
}
