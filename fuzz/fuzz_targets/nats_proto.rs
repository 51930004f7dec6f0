#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// Bytes from a NATS server: incremental parses agree with whole ones; channel names survive the
// subject mapping (checks::nats_proto).
fuzz_target!(|input: (&[u8], &str)| checks::nats_proto(input.0, input.1));
