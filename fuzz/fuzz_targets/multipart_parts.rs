#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// decode(encode(message)) == message, split anywhere (checks::multipart_parts).
fuzz_target!(
    |input: (Vec<u8>, Option<String>, u8)| checks::multipart_parts(input.0, input.1, input.2)
);
