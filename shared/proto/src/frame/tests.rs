use super::*;

fn head() -> RequestHead {
    RequestHead {
        service: "everything".into(),
        method: "POST".into(),
        query: String::new(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        principal: "anonymous".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        request_id: "0af7651916cd43dd8448eb211c80319c".into(),
        assertion: None,
    }
}

#[test]
fn round_trip_and_partial_input() {
    let bytes = encode(&head()).unwrap();
    for cut in 0..bytes.len() {
        assert!(decode::<RequestHead>(&bytes[..cut]).unwrap().is_none());
    }
    let (back, used) = decode::<RequestHead>(&bytes).unwrap().unwrap();
    assert_eq!(back, head());
    assert_eq!(used, bytes.len());
}

#[test]
fn oversized_prefix_is_refused_before_allocating() {
    let mut bytes = (u32::MAX).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0; 8]);
    assert!(matches!(
        decode::<RequestHead>(&bytes),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn garbage_and_unknown_variants_are_errors() {
    use crate::control::Control;

    let mut bytes = 3u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0xc1, 0xc1, 0xc1]);
    assert!(matches!(
        decode::<Control>(&bytes),
        Err(FrameError::Decode(_))
    ));

    #[derive(Serialize)]
    enum Future {
        Teleport { to: String },
    }
    let bytes = encode(&Future::Teleport { to: "x".into() }).unwrap();
    assert!(decode::<Control>(&bytes).is_err());
}

#[test]
fn frame_buffer_reassembles_frames_split_anywhere() {
    let one = encode(&head()).unwrap();
    let two = encode(&ResponseHead {
        status: 200,
        headers: vec![],
        backend_us: Some(1500),
    })
    .unwrap();
    let wire = [one.as_slice(), two.as_slice()].concat();
    for cut in 0..wire.len() {
        let mut b = FrameBuffer::default();
        let mut heads = Vec::new();
        b.push(&wire[..cut]);
        if let Some(h) = b.next_frame::<RequestHead>().unwrap() {
            heads.push(h);
        }
        b.push(&wire[cut..]);
        while heads.is_empty() {
            heads.push(b.next_frame::<RequestHead>().unwrap().unwrap());
        }
        assert_eq!(heads, [head()], "cut at {cut}");
        let resp: ResponseHead = b.next_frame().unwrap().unwrap();
        assert_eq!(resp.status, 200);
        assert!(b.next_frame::<ResponseHead>().unwrap().is_none() && b.is_empty());
    }
    let mut b = FrameBuffer::default();
    b.push(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes());
    assert!(matches!(
        b.next_frame::<RequestHead>(),
        Err(FrameError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn async_shells_match_pure_functions() {
    let resp = ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), b"text/event-stream".to_vec())],
        backend_us: None,
    };
    let mut wire = Vec::new();
    write_frame(&mut wire, &resp).await.unwrap();
    write_frame(&mut wire, &head()).await.unwrap();
    let mut r = &wire[..];
    assert_eq!(
        read_frame::<ResponseHead, _>(&mut r).await.unwrap(),
        Some(resp)
    );
    assert_eq!(
        read_frame::<RequestHead, _>(&mut r).await.unwrap(),
        Some(head())
    );
    assert!(read_frame::<ResponseHead, _>(&mut r)
        .await
        .unwrap()
        .is_none());
    let mut cut = &wire[..6];
    assert!(matches!(
        read_frame::<ResponseHead, _>(&mut cut).await,
        Err(FrameError::Truncated)
    ));
}

#[test]
fn backend_time_is_optional_both_ways() {
    // An older connector's head (no `backend_us`) still decodes, and an older edge reads a
    // newer head (named maps: unknown keys are skipped).
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct OldHead {
        status: u16,
        headers: Vec<Header>,
    }
    let old = encode(&OldHead {
        status: 200,
        headers: vec![],
    })
    .unwrap();
    let (new, _) = decode::<ResponseHead>(&old).unwrap().unwrap();
    assert_eq!(new.backend_us, None);
    let timed = encode(&ResponseHead {
        status: 201,
        headers: vec![],
        backend_us: Some(42),
    })
    .unwrap();
    let (back, _) = decode::<ResponseHead>(&timed).unwrap().unwrap();
    assert_eq!(back.backend_us, Some(42));
    let (seen_by_old, _) = decode::<OldHead>(&timed).unwrap().unwrap();
    assert_eq!(seen_by_old.status, 201);
}
