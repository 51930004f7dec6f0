#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// No panic; lenient agrees with strict; a well-formed message round-trips exactly (checks::lhttp_message).
fuzz_target!(|data: &[u8]| checks::lhttp_message(data));
