#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::http::date::{format_http_date, parse_http_date};

// Parsing arbitrary text never panics; a parsed date formats and parses back to itself.
fuzz_target!(|data: &str| {
    if let Some(secs) = parse_http_date(data) {
        assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
    }
});
