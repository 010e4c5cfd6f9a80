use super::*;

#[tokio::test]
async fn bounded_lines() {
    let data: &[u8] = b"short\r\n0123456789abcdef\nlast";
    let mut r = BufReader::with_capacity(4, data);
    let mut buf = Vec::new();
    assert_eq!(
        read_line_bounded(&mut r, &mut buf, 8).await.unwrap(),
        Line::Whole
    );
    assert_eq!(buf, b"short\r");
    assert_eq!(
        read_line_bounded(&mut r, &mut buf, 8).await.unwrap(),
        Line::Cut { len: 16 }
    );
    assert_eq!(buf, b"01234567");
    assert_eq!(
        read_line_bounded(&mut r, &mut buf, 8).await.unwrap(),
        Line::Whole
    );
    assert_eq!(buf, b"last");
    assert_eq!(
        read_line_bounded(&mut r, &mut buf, 8).await.unwrap(),
        Line::Eof
    );
}
