#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// The iterative matcher agrees with the recursive definition (checks::glob_filter).
fuzz_target!(|input: (&[u8], &[u8], &str, &str)| checks::glob_filter(
    input.0, input.1, input.2, input.3
));
