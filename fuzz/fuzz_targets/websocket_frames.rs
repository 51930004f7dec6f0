#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::transport::ws::{encode_client_frame, CloseReason, Decoder, Event};

/// Decodes `input` fed in pieces of `step` bytes, as the reactor would.
fn decode(input: &[u8], step: usize) -> (Vec<Event>, Option<CloseReason>) {
    let mut decoder = Decoder::new(1 << 16);
    let (mut events, mut buf) = (Vec::new(), Vec::new());
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&buf) {
                Ok((0, _)) => break,
                Ok((used, event)) => {
                    assert!(used <= buf.len());
                    buf.drain(..used);
                    events.extend(event);
                }
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

// Whole and split input give the same events and the same verdict; a masked frame of any
// payload decodes back to that payload.
fuzz_target!(|input: (u8, [u8; 4], Vec<u8>, &[u8])| {
    let (step, mask, payload, stream) = input;
    let whole = decode(stream, stream.len());
    let split = decode(stream, usize::from(step));
    assert_eq!(whole, split);
    let frame = encode_client_frame(true, 2, &payload, mask);
    let (events, error) = decode(&frame, frame.len());
    if payload.len() <= 1 << 16 {
        assert_eq!(error, None);
        assert_eq!(events, [Event::Message { text: false, payload }]);
    }
});
