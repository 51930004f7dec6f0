#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// decode(encode(x)) == x for body, id and event name (checks::sse_event).
fuzz_target!(|input: (u64, Option<String>, String)| checks::sse_event(input.0, input.1, input.2));
