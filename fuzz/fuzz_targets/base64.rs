#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// Round trip; decoding arbitrary bytes never panics (checks::base64).
fuzz_target!(|data: &[u8]| checks::base64(data));
