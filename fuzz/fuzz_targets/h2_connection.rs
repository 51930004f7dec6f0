#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// The same events and output however the input is split (checks::h2_connection).
fuzz_target!(|input: (u8, &[u8])| checks::h2_connection(input.0, input.1));
