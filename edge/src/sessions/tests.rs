use super::*;

#[test]
fn key_files_must_hold_exactly_32_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.key");
    std::fs::write(&good, [7u8; 32]).unwrap();
    let other = dir.path().join("other.key");
    std::fs::write(&other, [8u8; 32]).unwrap();
    let sealer = load(Some(&[good.clone(), other.clone()])).unwrap();
    assert!(sealer.is_shared());
    assert_eq!(sealer.key_ids().len(), 2);

    let short = dir.path().join("short.key");
    std::fs::write(&short, [7u8; 31]).unwrap();
    let hex_text = dir.path().join("hex.key");
    std::fs::write(&hex_text, "07".repeat(32)).unwrap();
    for (path, why) in [
        (&short, "holds 31 bytes, not 32"),
        (&hex_text, "holds 64 bytes, not 32"),
    ] {
        let err = format!(
            "{:#}",
            load(Some(&[good.clone(), path.clone()])).unwrap_err()
        );
        assert!(err.contains(why) && err.contains("session-key"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    let missing = dir.path().join("missing.key");
    let err = format!("{:#}", load(Some(&[missing])).unwrap_err());
    assert!(err.contains("cannot read session key"), "{err}");
    let err = format!("{:#}", load(Some(&[good.clone(), good])).unwrap_err());
    assert!(err.contains("same key"), "{err}");
    assert!(format!("{:#}", load(Some(&[])).unwrap_err()).contains("no session key"));
}

#[test]
fn without_keys_the_edge_seals_with_its_own() {
    let s = load(None).unwrap();
    assert!(!s.is_shared());
}
