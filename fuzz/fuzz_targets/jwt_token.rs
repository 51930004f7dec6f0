#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::auth::JwtKey;

// Verifying arbitrary text never panics and never grants anything without the key; a token
// signed with the key over any claims object verifies, or fails only on its claims' content.
fuzz_target!(|input: (&str, &str)| {
    let (token, claims) = input;
    let key = JwtKey::new(b"fuzz");
    if let Ok(grant) = key.verify(token, 1_800_000_000) {
        // Only a token with our signature gets here: the fuzzer cannot forge HMAC-SHA256.
        assert!(token.split('.').count() == 3);
        let _ = grant.may_publish("x");
    }
    let signed = key.sign(claims);
    if let Err(e) = key.verify(&signed, 1_800_000_000) {
        let why = e.to_string();
        assert!(
            why != "bad token signature" && why != "token algorithm must be HS256",
            "{why}"
        );
    }
});
