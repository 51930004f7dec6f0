#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// A parsed frame written back parses to the same bytes (checks::h2_frames).
fuzz_target!(|data: &[u8]| checks::h2_frames(data));
