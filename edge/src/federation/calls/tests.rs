use super::*;

#[test]
fn only_the_clients_mcp_param_headers_are_passed_on() {
    let mut headers = http::HeaderMap::new();
    headers.insert("mcp-param-region", "eu-west".parse().unwrap());
    headers.insert("Mcp-Param-Count", "=?base64?NDI=?=".parse().unwrap());
    headers.insert("mcp-name", "fixture__tool".parse().unwrap());
    headers.insert("authorization", "Bearer secret".parse().unwrap());
    headers.insert("mcp-paramx", "no".parse().unwrap());
    let mut passed = param_headers(&headers);
    passed.sort();
    assert_eq!(
        passed,
        [
            ("mcp-param-count".to_owned(), b"=?base64?NDI=?=".to_vec()),
            ("mcp-param-region".to_owned(), b"eu-west".to_vec()),
        ]
    );
}
