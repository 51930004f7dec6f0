#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// A parsed date formats and parses back to itself (checks::http_date).
fuzz_target!(|data: &str| checks::http_date(data));
