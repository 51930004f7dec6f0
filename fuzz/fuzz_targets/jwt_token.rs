#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// No grant without the key; our own signature always verifies (checks::jwt_token).
fuzz_target!(|input: (&str, &str)| checks::jwt_token(input.0, input.1));
