//! Resource URIs on the federated endpoint: `underpass://{prefix}/{original}`, the backend's
//! URI kept verbatim after the first `/` of the path, so it maps back exactly ([`original_uri`])
//! and two services' equal URIs stay apart. The specification leaves a gateway's URIs to it;
//! this form is a valid URI for any original (what follows the authority is a path that may
//! hold `:` and `//`), and readable in a client's display.

/// The scheme and `//` of every federated URI.
pub const SCHEME: &str = "underpass://";

/// The federated URI (or URI template) of a backend's `uri` from the service with `prefix`.
pub fn federated_uri(prefix: &str, uri: &str) -> String {
    format!("{SCHEME}{prefix}/{uri}")
}

/// `(prefix, original)` of a federated URI; `None` for anything this endpoint did not hand out.
pub fn original_uri(federated: &str) -> Option<(&str, &str)> {
    let rest = federated.strip_prefix(SCHEME)?;
    let (prefix, original) = rest.split_once('/')?;
    (!prefix.is_empty() && !original.is_empty()).then_some((prefix, original))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_map_back_exactly() {
        for original in [
            "demo://resource/static/document/hello.txt",
            "file:///etc/hosts",
            "https://example.com/a?b=c#d",
            "test://x/{id}",
            "urn:x:y",
        ] {
            let f = federated_uri("svc", original);
            assert_eq!(original_uri(&f), Some(("svc", original)), "{f}");
        }
        assert_eq!(
            federated_uri("everything", "demo://r"),
            "underpass://everything/demo://r"
        );
    }

    #[test]
    fn foreign_uris_are_not_ours() {
        for uri in [
            "demo://r",
            "underpass://",
            "underpass://svc",
            "underpass://svc/",
            "underpass:///x",
            "UNDERPASS://svc/x",
        ] {
            assert_eq!(original_uri(uri), None, "{uri}");
        }
    }
}
