use super::*;

#[test]
fn demotes_once_past_the_threshold() {
    let mut d = Demotion::default();
    assert!(!d.record(1000));
    assert!(
        !d.record((BULK_AFTER - 1000) as usize),
        "exactly at the threshold"
    );
    assert!(d.record(1), "the write that crosses it");
    assert!(!d.record(1 << 20), "only once");
}

#[test]
fn one_large_write_demotes() {
    let mut d = Demotion::default();
    assert!(d.record(1 << 20));
}

#[test]
fn later_bulk_transfers_queue_behind_earlier_ones() {
    let (a, b) = (next_bulk_priority(), next_bulk_priority());
    assert!(INTERACTIVE > BULK && BULK >= a && a > b, "{a} {b}");
}

#[test]
fn reset_keys_are_stable_per_secret() {
    let sign = |secret: &[u8]| {
        let key = stateless_reset_key(secret);
        let mut tag = vec![0; key.signature_len()];
        key.sign(b"connection id", &mut tag);
        tag
    };
    assert_eq!(
        sign(b"edge key"),
        sign(b"edge key"),
        "same secret, same tokens"
    );
    assert_ne!(sign(b"edge key"), sign(b"other key"));
}

#[test]
fn connection_ids_stay_valid_across_restarts() {
    use quinn::ConnectionIdGenerator;
    let mut first = quinn_proto::HashedConnectionIdGenerator::from_key(connection_id_key(b"k"));
    let second = quinn_proto::HashedConnectionIdGenerator::from_key(connection_id_key(b"k"));
    let other = quinn_proto::HashedConnectionIdGenerator::from_key(connection_id_key(b"x"));
    let valid = (0..32).all(|_| second.validate(&first.generate_cid()).is_ok());
    assert!(valid, "a restart with the same secret knows the old IDs");
    let foreign = (0..32)
        .filter(|_| other.validate(&first.generate_cid()).is_ok())
        .count();
    assert!(foreign < 2, "{foreign}");
}

#[test]
fn keep_alives_fit_the_idle_timeout() {
    assert!(KEEP_ALIVE * 4 <= IDLE_TIMEOUT);
}

#[test]
fn no_overflow() {
    let mut d = Demotion::default();
    assert!(d.record(usize::MAX));
    assert!(!d.record(usize::MAX));
}
