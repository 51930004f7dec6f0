#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// Bytes from an AMQP broker: frames cut the same from any longer input and re-encode to their
// bytes; methods and content headers round-trip (checks::amqp_frames).
fuzz_target!(|bytes: &[u8]| checks::amqp_frames(bytes));
