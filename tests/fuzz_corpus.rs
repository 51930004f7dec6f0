//! Every seed in fuzz/corpus/<target>/ through the property its fuzz target asserts
//! (fuzz/checks.rs, shared with the targets), so a target whose property no longer holds on
//! its seeds fails `cargo test`, not only a fuzzing run.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// Reads a seed's bytes as typed input, laid out as the `arbitrary` crate (1.x) lays out
/// `fuzz_target!` inputs: fixed-size values from the front, the last value takes the rest,
/// the length of any other variable-size value comes from the back, and options and vectors
/// are led by a byte whose low bit says "one more". Where this reading differs from the
/// fuzzer's, the checks still run on well-typed values and must hold for every input; only
/// which case a seed exercises may differ.
struct Seed<'a> {
    data: &'a [u8],
}

impl<'a> Seed<'a> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }

    fn flag(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A length for a value that is not last: one byte from the back, within what is left.
    fn len(&mut self) -> usize {
        match self.data.split_last() {
            Some((&b, rest)) if !rest.is_empty() => {
                self.data = rest;
                usize::from(b) % (rest.len() + 1)
            }
            _ => {
                self.data = &[];
                0
            }
        }
    }

    fn bytes(&mut self) -> &'a [u8] {
        let n = self.len();
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }

    /// The longest UTF-8 prefix of `bytes`.
    fn utf8(bytes: &[u8]) -> &str {
        match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap(),
        }
    }

    fn str(&mut self) -> &'a str {
        Self::utf8(self.bytes())
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    fn rest_str(&mut self) -> &'a str {
        Self::utf8(self.rest())
    }
}

/// Feeds one seed to the check of `target`.
fn replay(target: &str, data: &[u8]) {
    let mut s = Seed { data };
    match target {
        "amqp_frames" => checks::amqp_frames(data),
        "base64" => checks::base64(data),
        "chunked_body" => checks::chunked_body(s.u8(), s.rest()),
        "connection" => checks::connection(s.u8(), s.rest()),
        "glob_filter" => {
            let (pattern, text, list) = (s.bytes(), s.bytes(), s.str());
            checks::glob_filter(pattern, text, list, s.rest_str())
        }
        "http_date" => checks::http_date(s.rest_str()),
        "h2_connection" => checks::h2_connection(s.u8(), s.rest()),
        "h2_frames" => checks::h2_frames(data),
        "hpack" => checks::hpack(data),
        "http_head" => checks::http_head(data),
        "jwt_token" => {
            let token = s.str();
            checks::jwt_token(token, s.rest_str())
        }
        "lhttp_message" => checks::lhttp_message(data),
        "log_record" => checks::log_record(data),
        "nats_proto" => {
            let bytes = s.bytes();
            checks::nats_proto(bytes, s.rest_str())
        }
        "multipart_parts" => {
            let body = (0..)
                .map_while(|_| s.flag().then(|| s.u8()))
                .take(1 << 16)
                .collect();
            let sender = s.flag().then(|| s.str().to_string());
            checks::multipart_parts(body, sender, s.u8())
        }
        "proxy_header" => checks::proxy_header(data),
        "query_string" => checks::query_string(s.rest_str()),
        "sse_event" => {
            let id = s.u64();
            let event = s.flag().then(|| s.str().to_string());
            checks::sse_event(id, event, s.rest_str().to_string())
        }
        "upstream_url" => {
            let (url, prefix) = (s.str(), s.str());
            let mut headers = Vec::new();
            while s.flag() && headers.len() < 64 {
                headers.push((s.bytes().to_vec(), s.bytes().to_vec()));
            }
            checks::upstream_url(url, prefix, &headers, s.rest())
        }
        "websocket_frames" => {
            let split = s.u8();
            let mask = [s.u8(), s.u8(), s.u8(), s.u8()];
            let payload = s.bytes().to_vec();
            checks::websocket_frames(split, mask, payload, s.rest())
        }
        other => panic!("fuzz target {other} has no replay here: add it"),
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn every_seed_holds_its_targets_property() {
    let targets: Vec<String> = names_in(&fuzz_dir().join("fuzz_targets"))
        .into_iter()
        .filter_map(|f| f.strip_suffix(".rs").map(String::from))
        .collect();
    assert!(targets.len() >= 13, "{targets:?}");
    let mut replayed = 0;
    for target in &targets {
        let corpus = fuzz_dir().join("corpus").join(target);
        assert!(
            corpus.is_dir(),
            "{target} has no seeds in {}",
            corpus.display()
        );
        for name in names_in(&corpus) {
            let data = std::fs::read(corpus.join(&name)).unwrap();
            let outcome = std::panic::catch_unwind(|| replay(target, &data));
            assert!(
                outcome.is_ok(),
                "{target}/{name}: the property does not hold"
            );
            replayed += 1;
        }
    }
    // No corpus directory without a target either.
    for corpus in names_in(&fuzz_dir().join("corpus")) {
        assert!(targets.contains(&corpus), "corpus/{corpus} has no target");
    }
    assert!(replayed >= targets.len());
}
