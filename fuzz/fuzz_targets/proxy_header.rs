#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// A PROXY header is self-delimiting, resumable, and round-trips (checks::proxy_header).
fuzz_target!(|data: &[u8]| checks::proxy_header(data));
