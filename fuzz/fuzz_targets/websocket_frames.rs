#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// Whole and split input give the same events; masked payloads come back (checks::websocket_frames).
fuzz_target!(
    |input: (u8, [u8; 4], Vec<u8>, &[u8])| checks::websocket_frames(
        input.0, input.1, input.2, input.3
    )
);
