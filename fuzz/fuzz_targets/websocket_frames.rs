#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::transport::websocket::{encode_client_frame, CloseReason, Event, FrameDecoder, Opcode};

const MAX_MESSAGE: usize = 1 << 16;

/// Feeds the pieces in turn, as the reactor would, collecting events until the first error.
fn decode(pieces: &[&[u8]]) -> (Vec<Event>, Option<CloseReason>) {
    let mut decoder = FrameDecoder::new(MAX_MESSAGE);
    let mut events = Vec::new();
    for &piece in pieces {
        let mut rest = piece;
        loop {
            let (used, outcome) = decoder.decode(rest);
            rest = &rest[used..];
            match outcome {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(reason) => return (events, Some(reason)),
            }
        }
        assert!(rest.is_empty(), "Ok(None) must mean every byte was used");
    }
    (events, None)
}

// Whatever the bytes and wherever they are split, the events and the verdict are the same; and
// a payload masked into client frames, cut in two fragments, decodes back to itself.
fuzz_target!(|input: (u8, [u8; 4], Vec<u8>, &[u8])| {
    let (split, mask, payload, stream) = input;
    let at = stream.len() * usize::from(split) / 255;
    assert_eq!(decode(&[stream]), decode(&[&stream[..at], &stream[at..]]));

    if payload.len() > MAX_MESSAGE {
        return;
    }
    let text = std::str::from_utf8(&payload).is_ok();
    let opcode = if text { Opcode::Text } else { Opcode::Binary };
    // Cut anywhere, even inside a character, with a ping between the fragments.
    let cut = payload.len() * usize::from(split) / 255;
    let frames = [
        encode_client_frame(opcode, false, &payload[..cut], mask),
        encode_client_frame(Opcode::Ping, true, &mask, mask),
        encode_client_frame(Opcode::Continuation, true, &payload[cut..], mask),
    ]
    .concat();
    let want = vec![Event::Ping(mask.to_vec()), Event::Message { text, payload }];
    assert_eq!(decode(&[&frames]), (want, None));
});
