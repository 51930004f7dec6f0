#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::bus::filter::Filter;
use msgbus::glob::glob_match;

/// The obvious recursive definition, exponential but fine on short inputs.
fn reference(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, _) => text.is_empty(),
        (Some(b'*'), _) => {
            reference(&pattern[1..], text) || (!text.is_empty() && reference(pattern, &text[1..]))
        }
        (Some(&p), Some(&t)) if p == b'?' || p == t => reference(&pattern[1..], &text[1..]),
        _ => false,
    }
}

// The iterative matcher agrees with the recursive definition; filters never panic.
fuzz_target!(|input: (&[u8], &[u8], &str, &str)| {
    let (pattern, text, list, value) = input;
    if pattern.len() <= 12 && text.len() <= 16 {
        assert_eq!(glob_match(pattern, text), reference(pattern, text));
    }
    let filter = Filter::new(Some(list), Some(list));
    let _ = filter.accepts(value, Some(value));
    let _ = filter.accepts(value, None);
});
