use super::*;

#[test]
fn query_joins() {
    let base: Uri = "http://127.0.0.1:3001/mcp".parse().unwrap();
    assert_eq!(with_query(&base, "").unwrap(), base);
    assert_eq!(
        with_query(&base, "a=1").unwrap().to_string(),
        "http://127.0.0.1:3001/mcp?a=1"
    );
    let base: Uri = "http://h/mcp?k=v".parse().unwrap();
    assert_eq!(
        with_query(&base, "a=1").unwrap().to_string(),
        "http://h/mcp?k=v&a=1"
    );
    assert_eq!(with_query(&base, "").unwrap(), base);
}

#[test]
fn the_configured_query_cannot_be_overridden() {
    let base: Uri = "http://h/mcp?tenant=acme&mode=ro".parse().unwrap();
    for query in [
        "tenant=evil",
        "a=1&tenant=evil",
        "tenant",
        "%74enant=evil",
        "mode=rw&x=1",
    ] {
        match with_query(&base, query) {
            Err(BackendError::QueryParameter(k)) => {
                assert!(k == "tenant" || k == "mode", "{query}: {k}")
            }
            other => panic!("{query}: {other:?}"),
        }
    }
    assert_eq!(
        with_query(&base, "tenantx=1&x=tenant").unwrap().to_string(),
        "http://h/mcp?tenant=acme&mode=ro&tenantx=1&x=tenant"
    );
    let e = with_query(&base, "tenant=evil").unwrap_err();
    assert_eq!(e.status(), 400);
    // A URL without a query fixes nothing.
    let plain: Uri = "http://h/mcp".parse().unwrap();
    assert!(with_query(&plain, "tenant=x").is_ok());
}

#[test]
fn query_keys_decode() {
    assert_eq!(
        query_keys("a=1&b&&c=&d+e=2&%41=3"),
        ["a", "b", "c", "d e", "A"]
    );
}
