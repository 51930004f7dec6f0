#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// A complete head parses the same from exactly its own bytes (checks::http_head).
fuzz_target!(|data: &[u8]| checks::http_head(data));
