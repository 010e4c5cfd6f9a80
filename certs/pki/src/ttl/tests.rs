use super::*;

#[test]
fn parses_humantime() {
    assert_eq!(parse("2m").expect("2m"), Duration::from_secs(120));
    assert_eq!(parse("24h").expect("24h"), Duration::from_secs(86_400));
    assert_eq!(parse("30d").expect("30d"), Duration::from_secs(30 * 86_400));
    assert_eq!(parse(" 1h 30m ").expect("1h30m"), Duration::from_secs(5400));
    for bad in ["", "10", "ten minutes", "-5m", "5 parsecs"] {
        let err = parse(bad).expect_err(bad);
        assert!(err.to_string().starts_with("invalid --ttl"), "{err}");
    }
}

#[test]
fn bounds() {
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("t");
    let ca_end = now + time::Duration::days(10);
    assert_eq!(
        check_cert_ttl(Duration::from_secs(60), now, ca_end).expect("1m"),
        now + time::Duration::minutes(1)
    );
    check_cert_ttl(Duration::from_secs(10 * 86_400), now, ca_end).expect("exactly CA end");
    let err = check_cert_ttl(Duration::from_secs(59), now, ca_end).expect_err("short");
    assert!(matches!(err, Error::TtlTooShort { .. }), "{err}");
    assert!(err.to_string().contains("at least 1m"), "{err}");
    let err = check_cert_ttl(Duration::from_secs(11 * 86_400), now, ca_end).expect_err("long");
    assert!(matches!(err, Error::TtlBeyondCa { .. }), "{err}");
    assert!(
        err.to_string().contains("after the signing CA's own end"),
        "{err}"
    );
    let err = check_cert_ttl(Duration::MAX, now, ca_end).expect_err("huge");
    assert!(matches!(err, Error::TtlBeyondCa { .. }), "{err}");
}
