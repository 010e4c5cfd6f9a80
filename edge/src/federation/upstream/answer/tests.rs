use serde_json::json;

use super::*;

fn answer(text: &str) -> Option<Result<String, String>> {
    let envelope: Envelope<'_> = serde_json::from_str(text).unwrap();
    envelope.answer(&json!(7)).map(|r| {
        r.map(|raw| raw.get().to_owned())
            .map_err(|e| format!("{e:?}"))
    })
}

#[test]
fn an_envelope_answers_its_own_id_with_the_result_as_text() {
    let got = answer(r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[ {"name":"a"} ]}}"#);
    assert_eq!(got, Some(Ok(r#"{"tools":[ {"name":"a"} ]}"#.to_owned())));
    // A null result is an answer, as it was when the message was parsed whole.
    assert_eq!(
        answer(r#"{"id":7,"result":null}"#),
        Some(Ok("null".to_owned()))
    );
    assert_eq!(answer(r#"{"id":8,"result":{}}"#), None);
    assert_eq!(answer(r#"{"id":"7","result":{}}"#), None);
    assert_eq!(answer(r#"{"method":"notifications/progress"}"#), None);
    let err = answer(r#"{"id":7,"error":{"code":-32601,"message":"no"}}"#);
    assert!(
        matches!(&err, Some(Err(e)) if e.contains("-32601")),
        "{err:?}"
    );
    assert!(matches!(answer(r#"{"id":7,"error":null}"#), Some(Err(_))));
}
