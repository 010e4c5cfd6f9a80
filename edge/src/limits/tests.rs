use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};

use futures_util::stream;
use futures_util::StreamExt as _;
use http_body_util::StreamBody;

use super::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

#[test]
fn per_key_counts_cap_and_give_back() {
    let k = PerKey::<String>::default();
    let alice = "alice".to_owned();
    let a1 = k.try_acquire(&alice, 2).expect("first");
    let a2 = k.try_acquire(&alice, 2).expect("second");
    assert!(k.try_acquire(&alice, 2).is_none(), "third is over the cap");
    assert!(
        k.try_acquire(&"bob".to_owned(), 2).is_some(),
        "bob has his own count"
    );
    drop(a1);
    let a3 = k.try_acquire(&alice, 2).expect("a place came back");
    let forced = k.acquire(&alice);
    assert_eq!(k.count(&alice), 3);
    drop((a2, a3, forced));
    assert_eq!(k.count(&alice), 0);
    assert!(
        lock(&k.counts).is_empty(),
        "no entry left for a key holding nothing"
    );
}

#[test]
fn activity_is_idle_only_with_nothing_in_flight() {
    let a = Arc::new(Activity::default());
    assert!(a.idle_for().is_some());
    let busy = a.begin();
    let busy2 = a.begin();
    assert!(a.idle_for().is_none());
    drop(busy);
    assert!(a.idle_for().is_none(), "one still in flight");
    drop(busy2);
    assert!(a.idle_for().is_some_and(|d| d < Duration::from_secs(5)));
}

#[test]
fn sources_are_counted_per_address_and_per_ipv6_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(source_key(a), source_key(b));
    assert_ne!(source_key(a), source_key(c));
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    assert_eq!(source_key(mapped), ip(7));
    assert_eq!(
        source_key(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        source_key(IpAddr::V6(Ipv6Addr::LOCALHOST))
    );
}

#[test]
fn per_ip_cap_refuses_the_next_connection_from_that_address() {
    let t = Arc::new(ConnTable::new(100, 2));
    let _a = t.admit(ip(1)).unwrap();
    let b = t.admit(ip(1)).unwrap();
    assert_eq!(
        t.admit(ip(1)).err(),
        Some(Refused::PerIp { ip: ip(1), cap: 2 })
    );
    assert!(t.admit(ip(2)).is_ok(), "another address is not affected");
    drop(b);
    assert!(
        t.admit(ip(1)).is_ok(),
        "a closed connection gives its place back"
    );
}

#[tokio::test]
async fn a_full_table_evicts_the_connection_idle_longest_never_a_busy_one() {
    let t = Arc::new(ConnTable::new(2, 10));
    let old = t.admit(ip(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let busy_conn = t.admit(ip(2)).unwrap();
    let busy = busy_conn.activity().begin();

    // Full: the idle one is told to close and the newcomer gets in.
    let newcomer = t.admit(ip(3)).expect("room made by eviction");
    tokio::time::timeout(Duration::from_secs(5), old.evicted())
        .await
        .expect("the idle connection was told to close");
    assert_eq!(t.open(), 3, "the evicted one counts until it has closed");

    // Every remaining connection busy: refused, nobody evicted.
    let _busy2 = newcomer.activity().begin();
    assert_eq!(t.admit(ip(4)).err(), Some(Refused::Full { cap: 2 }));
    drop(old);
    assert_eq!(t.open(), 2);
    assert_eq!(t.admit(ip(4)).err(), Some(Refused::Full { cap: 2 }));

    // Once a request ends, that connection can make room again.
    drop(busy);
    assert!(t.admit(ip(4)).is_ok());
    drop(busy_conn);
}

#[test]
fn connection_cap_leaves_descriptors_for_everything_else() {
    assert_eq!(
        connection_cap(8192, Some(1024)),
        1024 - RESERVED_DESCRIPTORS as usize
    );
    assert_eq!(connection_cap(100, Some(65536)), 100);
    assert_eq!(connection_cap(8192, None), 8192);
    assert_eq!(connection_cap(8192, Some(10)), 16);
}

#[test]
fn log_throttle_says_at_most_one_line_per_period_with_the_count() {
    let t = LogThrottle::default();
    assert_eq!(t.hit(), Some(1));
    for _ in 0..99 {
        assert_eq!(t.hit(), None);
    }
    *lock(&t.last) = Some(Instant::now() - LogThrottle::EVERY);
    assert_eq!(t.hit(), Some(100));
}

fn body_of(
    chunks: Vec<&'static [u8]>,
    then_stall: bool,
) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin {
    let frames = stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect::<Vec<_>>(),
    );
    let tail = if then_stall {
        stream::pending().left_stream()
    } else {
        stream::empty().right_stream()
    };
    StreamBody::new(frames.chain(tail))
}

const KB: &[u8] = &[b'x'; 1024];

#[tokio::test]
async fn bodies_hold_their_size_from_the_budget_until_dropped() {
    let budget = BodyBudget::new(3 * 1024);
    let mut one = body_of(vec![KB, KB], false);
    let held = read_body(&mut one, 1 << 20, &budget, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(held.len(), 2048);
    assert_eq!(budget.available_kib(), 1);
    let clone = held.clone();
    drop(held);
    assert_eq!(budget.available_kib(), 1, "a clone still holds the bytes");

    // A chunked body growing past what is left: refused, never waited for.
    let mut two = body_of(vec![KB, KB], false);
    let r = read_body(&mut two, 1 << 20, &budget, Duration::from_secs(5)).await;
    assert!(matches!(r, Err(BodyRefused::OverBudget)), "{r:?}");
    assert_eq!(
        budget.available_kib(),
        1,
        "the refused body gave its share back"
    );

    drop(clone);
    assert_eq!(budget.available_kib(), 3);
    let mut three = body_of(vec![KB, KB, KB], false);
    assert!(
        read_body(&mut three, 1 << 20, &budget, Duration::from_secs(5))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_declared_length_is_reserved_up_front() {
    let budget = BodyBudget::new(4 * 1024);
    let mut declared = http_body_util::Full::new(Bytes::from(vec![b'y'; 3 * 1024]));
    let held = read_body(&mut declared, 1 << 20, &budget, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(budget.available_kib(), 1);
    let mut second = http_body_util::Full::new(Bytes::from(vec![b'y'; 2 * 1024]));
    let r = read_body(&mut second, 1 << 20, &budget, Duration::from_secs(5)).await;
    assert!(matches!(r, Err(BodyRefused::OverBudget)), "{r:?}");
    drop(held);
    let mut too_big = http_body_util::Full::new(Bytes::from(vec![b'y'; 2048]));
    let r = read_body(&mut too_big, 1024, &budget, Duration::from_secs(5)).await;
    assert!(
        matches!(r, Err(BodyRefused::TooLarge { limit: 1024 })),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_stalled_body_times_out_and_gives_its_share_back() {
    let budget = BodyBudget::new(8 * 1024);
    let mut stalled = body_of(vec![KB, KB], true);
    let r = read_body(&mut stalled, 1 << 20, &budget, Duration::from_millis(50)).await;
    assert!(matches!(r, Err(BodyRefused::TimedOut(_))), "{r:?}");
    assert_eq!(budget.available_kib(), 8);
    let mut chunked_too_big = body_of(vec![KB, KB], false);
    let r = read_body(&mut chunked_too_big, 1500, &budget, Duration::from_secs(5)).await;
    assert!(matches!(r, Err(BodyRefused::TooLarge { .. })), "{r:?}");
}
