#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::message::Message;
use msgbus::transport::sse::encode_event;

/// What an EventSource makes of one event: its fields, with `data` lines joined by LF.
fn parse_event(text: &str) -> (Option<String>, Option<String>, String) {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    let body = text
        .strip_suffix("\n\n")
        .expect("an event ends with a blank line");
    for line in body.split('\n') {
        let (field, value) = line.split_once(": ").expect("field: value");
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = Some(value.to_string()),
            "data" => data.push(value),
            other => panic!("unexpected field {other}"),
        }
    }
    (id, event, data.join("\n"))
}

// decode(encode(x)) == x: the browser gets the body back with its line ends as LF, the id and
// the event name; no line break in the body can start a field of its own.
fuzz_target!(|input: (u64, Option<String>, String)| {
    let (id, event, body) = input;
    let event = event.filter(|e| msgbus::transport::sse::valid_event_name(e));
    let mut msg = Message::new(
        id,
        "c".into(),
        "text/plain".into(),
        None,
        body.as_bytes().into(),
    );
    msg.event = event.as_deref().map(Into::into);
    let encoded = String::from_utf8(encode_event(&msg, false)).expect("an event is UTF-8");
    let (got_id, got_event, got_data) = parse_event(&encoded);
    assert_eq!(got_id, Some(id.to_string()));
    assert_eq!(got_event, event);
    assert_eq!(got_data, body.replace("\r\n", "\n").replace('\r', "\n"));
});
