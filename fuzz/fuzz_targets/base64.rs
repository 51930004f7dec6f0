#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::http::base64::{decode, encode};

// encode/decode round-trip; decoding arbitrary bytes never panics, and what decodes re-encodes
// to text that decodes the same (decoding tolerates missing padding and stray trailing bits).
fuzz_target!(|data: &[u8]| {
    assert_eq!(decode(encode(data).as_bytes()).as_deref(), Some(data));
    if let Some(bytes) = decode(data) {
        assert_eq!(decode(encode(&bytes).as_bytes()), Some(bytes));
    }
});
