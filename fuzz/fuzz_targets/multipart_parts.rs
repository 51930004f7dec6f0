#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::message::Message;
use msgbus::transport::multipart::{encode_part, PartDecoder};

// decode(encode(message)) == message, for any body and sender, split at any point.
fuzz_target!(|input: (Vec<u8>, Option<String>, u8)| {
    let (body, sender, split) = input;
    let sender = sender.filter(|s| !s.contains(['\n', '\r']) && s.trim() == s && !s.is_empty());
    let msg = Message::new(
        1,
        "c".into(),
        "text/plain".into(),
        sender.as_deref().map(Into::into),
        body.into(),
    );
    let stream = [b"--00MsgBus00\n".to_vec(), encode_part(&msg, true, false)].concat();
    let mut decoder = PartDecoder::new(1 << 20);
    let split = usize::from(split).min(stream.len());
    decoder.push(&stream[..split]);
    let early = decoder.next_part().unwrap();
    decoder.push(&stream[split..]);
    let part = early.or_else(|| decoder.next_part().unwrap()).unwrap();
    assert_eq!(part.body, &*msg.body);
    assert_eq!(part.header("From"), msg.sender.as_deref());
});
