#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::http::query::{percent_decode, percent_encode_path, split_target, Query};

// Parsing never panics; what is encoded for a path decodes back to itself.
fuzz_target!(|data: &str| {
    let (path, query) = split_target(data);
    assert!(path.len() + query.len() <= data.len());
    if let Ok(q) = Query::parse(query) {
        for (key, _) in q.pairs() {
            assert!(q.get(key).is_some());
        }
    }
    let _ = percent_decode(data.as_bytes(), true);
    let encoded = percent_encode_path(data);
    assert!(!encoded.contains(['?', '#', ' ']));
    assert_eq!(
        percent_decode(encoded.as_bytes(), false).unwrap(),
        data.as_bytes()
    );
});
