//! `-d DIR`: files with their types and dates, index.html, conditional GET, large files
//! streamed, and no way out of the document root.

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::*;

struct Docroot(PathBuf);

impl Docroot {
    fn new(name: &str) -> Docroot {
        let dir = std::env::temp_dir().join(format!("msgbus-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www/sub")).unwrap();
        std::fs::write(dir.join("www/index.html"), "<h1>home</h1>\n").unwrap();
        std::fs::write(dir.join("www/sub/app.js"), "let x = 1;\n").unwrap();
        std::fs::write(dir.join("secret.txt"), "top secret\n").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("www/leak.txt")).unwrap();
        std::os::unix::fs::symlink(dir.join("www/sub/app.js"), dir.join("www/alias.js")).unwrap();
        Docroot(dir)
    }

    fn www(&self) -> String {
        self.0.join("www").to_string_lossy().into_owned()
    }
}

impl Drop for Docroot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn get(server: &Server, path: &str, extra: &str) -> String {
    server.exchange(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn files_types_and_index() {
    let root = Docroot::new("types");
    let server = Server::start(&["-d", &root.www()]);
    let cases: &[(&str, &str, &str)] = &[
        ("/", "text/html; charset=utf-8", "<h1>home</h1>\n"),
        ("/index.html", "text/html; charset=utf-8", "<h1>home</h1>\n"),
        (
            "/sub/app.js",
            "text/javascript; charset=utf-8",
            "let x = 1;\n",
        ),
        (
            "/alias.js",
            "text/javascript; charset=utf-8",
            "let x = 1;\n",
        ),
        (
            "/sub/%61pp.js",
            "text/javascript; charset=utf-8",
            "let x = 1;\n",
        ),
    ];
    for (path, ty, body) in cases {
        let got = get(&server, path, "");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {got}");
        assert!(
            got.contains(&format!("\r\nContent-Type: {ty}\r\n")),
            "{path}: {got}"
        );
        assert!(
            got.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
            "{path}: {got}"
        );
        assert!(got.contains("\r\nLast-Modified: "), "{path}: {got}");
        assert!(got.ends_with(&format!("\r\n\r\n{body}")), "{path}: {got}");
    }
    let head =
        server.exchange(b"HEAD /sub/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nContent-Length: 11\r\n"), "{head}");
}

#[test]
fn no_way_out_of_the_docroot() {
    let root = Docroot::new("escape");
    let server = Server::start(&["-d", &root.www()]);
    for path in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/..\\secret.txt",
        "/leak.txt",
        "/missing.html",
        "/sub",
        "/index.html%00.txt",
    ] {
        let got = get(&server, path, "");
        assert!(
            got.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{path}: {got}"
        );
        assert!(!got.contains("top secret"), "{path}");
    }
}

#[test]
fn if_modified_since() {
    let root = Docroot::new("ims");
    let server = Server::start(&["-d", &root.www()]);
    let got = get(&server, "/index.html", "");
    let last_modified = got
        .split("\r\nLast-Modified: ")
        .nth(1)
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap();
    let not_modified = get(
        &server,
        "/index.html",
        &format!("If-Modified-Since: {last_modified}\r\n"),
    );
    assert!(
        not_modified.starts_with("HTTP/1.1 304 Not Modified\r\n"),
        "{not_modified}"
    );
    assert!(not_modified.ends_with("\r\n\r\n"), "{not_modified}");
    let old = get(
        &server,
        "/index.html",
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    );
    assert!(old.starts_with("HTTP/1.1 200 OK\r\n"), "{old}");
}

#[test]
fn a_large_file_is_streamed_whole_and_requests_after_it_wait_their_turn() {
    let root = Docroot::new("large");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.0.join("www/big.bin"), &data).unwrap();
    let server = Server::start(&["-d", &root.www()]);
    let mut stream = server.connect();
    stream.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let got = read_to_end(&mut stream);
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(
        head.contains("Content-Type: application/octet-stream\r\nContent-Length: 5000000\r\n"),
        "{head}"
    );
    assert!(
        got[head_end..head_end + data.len()] == data[..],
        "file bytes differ"
    );
    let rest = String::from_utf8_lossy(&got[head_end + data.len()..]);
    assert!(
        rest.starts_with("HTTP/1.1 200 OK\r\n") && rest.ends_with("let x = 1;\n"),
        "{rest}"
    );
}

#[test]
fn the_browser_client_is_built_in() {
    let server = Server::start(&[]);
    let got = server.exchange(b"GET /msgbus.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let js = include_str!("../static/msgbus.js");
    let want = format!(
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/javascript; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n{js}",
        js.len()
    );
    assert_eq!(got, want);
}

/// The README says msgbus.js is under 5 KB gzipped: `gzip -9` of the file must stay within
/// 5,000 bytes.
#[test]
fn the_browser_client_is_under_its_stated_gzipped_size() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/static/msgbus.js");
    let gzip = Guarded::spawn(
        std::process::Command::new("gzip")
            .args(["-9", "-n", "-c", path])
            .stdout(std::process::Stdio::piped()),
        "gzip",
    );
    let output = gzip.wait_with_output(READ_TIMEOUT);
    assert!(output.status.success());
    let size = output.stdout.len();
    assert!(
        size <= 5000,
        "msgbus.js is {size} bytes gzipped; the README says under 5 KB"
    );
}

/// The browser client as an ES module is built in too, whatever the document root.
#[test]
fn the_client_module_is_served_without_a_docroot() {
    let server = Server::start(&[]);
    let answer =
        server.exchange(b"GET /msgbus.mjs HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let source = include_str!("../static/msgbus.mjs");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(
        header_value(&answer, "Content-Type"),
        "text/javascript; charset=utf-8"
    );
    assert!(answer.ends_with(source), "{answer}");
    assert!(source.contains("import \"./msgbus.js\""));
}
