use super::*;

#[test]
fn expiry_says_when_and_how_long() {
    assert_eq!(
        expiry(None),
        json!({"not_after": null, "expires_in_seconds": null})
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let e = expiry(Some(now + 3600));
    let left = e["expires_in_seconds"].as_i64().unwrap();
    assert!((3590..=3600).contains(&left), "{e}");
    assert!(e["not_after"].as_str().unwrap().ends_with('Z'), "{e}");
    let past = expiry(Some(now - 10));
    assert!(past["expires_in_seconds"].as_i64().unwrap() < 0, "{past}");
}

#[test]
fn sessions_and_denials_of_an_idle_edge() {
    let registry = Registry::default();
    assert_eq!(
        sessions(&registry),
        json!({"total": 0, "by_service": {}, "by_principal": []})
    );
    let feed = Feed::new(["ok"]);
    assert_eq!(denials(&feed), json!({"total": 0, "denials": []}));
}
