#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::http::request::{parse_head, Parsed};

// A head is never longer than its input or the limit, and a complete head parses the same
// from exactly its own bytes.
fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Complete(request, len)) = parse_head(data, 4096, 1 << 20) {
        assert!(len <= data.len() && len <= 4096);
        assert_eq!(
            parse_head(&data[..len], 4096, 1 << 20),
            Ok(Parsed::Complete(request, len))
        );
    }
});
