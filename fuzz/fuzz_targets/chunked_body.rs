#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::http::chunked::{ChunkedDecoder, Progress};

const MAX_BODY: usize = 1 << 16;

/// Feeds `input` in pieces of `step` bytes, as the reactor would, keeping unused bytes.
fn decode_in_steps(input: &[u8], step: usize) -> Option<(usize, Progress, Vec<u8>)> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut consumed = 0;
    let mut end = 0;
    loop {
        end = (end + step).min(input.len());
        let (used, progress) = decoder
            .decode(&input[consumed..end], &mut body, MAX_BODY)
            .ok()?;
        consumed += used;
        assert!(body.len() <= MAX_BODY);
        if progress == Progress::Done || end == input.len() {
            return Some((consumed, progress, body));
        }
    }
}

// However the input is split, the decoder reaches the same verdict, the same body and stops at
// the same byte.
fuzz_target!(|input: (u8, &[u8])| {
    let (step, data) = input;
    let whole = decode_in_steps(data, data.len().max(1));
    let split = decode_in_steps(data, usize::from(step).max(1));
    if let (Some(whole), Some(split)) = (&whole, &split) {
        assert_eq!(whole, split);
    } else if whole.is_some() {
        // An error seen only when split would mean the split changed the meaning.
        panic!("split input failed where whole input did not");
    }
});
