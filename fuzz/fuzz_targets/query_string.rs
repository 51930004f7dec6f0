#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// Parsing never panics; encoded paths decode back to themselves (checks::query_string).
fuzz_target!(|data: &str| checks::query_string(data));
