#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::cluster::proto::{channel_for, parse, subject_for};

// Bytes from a NATS server, in any shape: parsing never panics; an operation found takes no more
// bytes than it was given, the same operation is found in exactly those bytes (so incremental
// reads agree with whole ones), and a payload stays within the limit. Any channel name maps to a
// subject and back unchanged.
fuzz_target!(|input: (&[u8], &str)| {
    let (bytes, channel) = input;
    if let Ok(Some((op, used))) = parse(bytes, 4096) {
        assert!(used > 0 && used <= bytes.len());
        assert_eq!(parse(&bytes[..used], 4096), Ok(Some((op, used))));
    }
    assert_eq!(
        channel_for("msgbus", &subject_for("msgbus", channel)).as_deref(),
        Some(channel)
    );
});
