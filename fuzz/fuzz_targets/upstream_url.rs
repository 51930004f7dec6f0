#![no_main]
use libfuzzer_sys::fuzz_target;
use msgbus::upstream::request::{encode_request, response_status, HttpUrl};

// An lhttp `upstream:` URL, headers and answer: parsing never panics; a URL that parses has a
// target starting with '/' and no way out of its allowed prefix; whatever the message headers
// hold, the request written has exactly the header lines it should and no line break of theirs.
fuzz_target!(|input: (&str, &str, Vec<(Vec<u8>, Vec<u8>)>, &[u8])| {
    let (url, prefix, headers, answer) = input;
    let _ = response_status(answer);
    let Ok(url) = HttpUrl::parse(url) else {
        return;
    };
    assert!(url.target.starts_with('/'));
    assert!(!url.target.contains(['\r', '\n', ' ', '#']));
    let path = url.target.split('?').next().unwrap_or("");
    for segment in path.split('/') {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        assert!(decoded != "." && decoded != "..", "{path}");
    }
    if let Ok(prefix) = HttpUrl::parse(prefix) {
        if url.is_under(&prefix) {
            assert_eq!((&url.host, url.port), (&prefix.host, prefix.port));
            assert!(url.target.starts_with(&prefix.target));
        }
    }
    let request = encode_request(b"POST", &url, &headers, Some(b"body"));
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = &request[..head_end + 2];
    // Every line ends in CRLF and nothing else breaks a line.
    let crlf = head.windows(2).filter(|w| w == b"\r\n").count();
    let lf = head.iter().filter(|&&b| b == b'\n').count();
    let cr = head.iter().filter(|&&b| b == b'\r').count();
    assert_eq!((crlf, crlf), (lf, cr));
    assert_eq!(&request[head_end + 4..], b"body");
    let host_lines = head
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 5 && l[..5].eq_ignore_ascii_case(b"host:"))
        .count();
    assert_eq!(host_lines, 1);
});
