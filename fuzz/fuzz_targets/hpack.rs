#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// Bounded table and list; decode(encode(list)) == list (checks::hpack).
fuzz_target!(|data: &[u8]| checks::hpack(data));
