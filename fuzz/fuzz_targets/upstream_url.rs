#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

// An upstream URL cannot leave its prefix; no header can split the request (checks::upstream_url).
fuzz_target!(
    |input: (&str, &str, Vec<(Vec<u8>, Vec<u8>)>, &[u8])| checks::upstream_url(
        input.0, input.1, &input.2, input.3
    )
);
