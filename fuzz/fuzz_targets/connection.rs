#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// A whole connection fed anything in any pieces: no panic, input and output within limits (checks::connection).
fuzz_target!(|input: (u8, &[u8])| checks::connection(input.0, input.1));
