//! `msgbus pub` and `msgbus sub` against the real server: what they print, each exit status
//! the man page lists, https:// with a private CA, tokens and Basic credentials.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::*;
use msgbus::auth::JwtKey;

/// The clients are always this build's, even when the server is a stand-in.
const CLIENT: &str = env!("CARGO_BIN_EXE_msgbus");

/// Runs the client to its exit with `stdin` as its input; bounded by the read timeout.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_with(Command::new(CLIENT).args(args), stdin)
}

fn run_with(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = Guarded::spawn(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "msgbus client",
    );
    let mut input = child.child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, stdin).unwrap();
    drop(input);
    child.wait_with_output(READ_TIMEOUT)
}

/// Starts `msgbus sub ARGS` in the background; its output is collected at its exit.
fn spawn_sub(args: &[&str]) -> Guarded {
    Guarded::spawn(
        Command::new(CLIENT)
            .arg("sub")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "msgbus sub",
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The exit status, stdout and stderr, compared in one assertion so a failure shows all three.
fn outcome(output: &Output) -> (Option<i32>, String, String) {
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// A port on 127.0.0.1 where nothing listens (bound, then let go).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msgbus-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn sub_prints_what_pub_sends() {
    let server = Server::start(&[]);
    let url = format!("http://{}/msgbus/cli", server.addr);
    // The client's own read deadline (-w) and the test's wait both bound it.
    let sub = spawn_sub(&["-v", "-n", "2", "-w", "10", &url]);
    // Wait for the subscription through the server's own count: one read per look.
    server.wait_for_counter("subscribers", |n| n > 0, "sub never subscribed");
    let dir = scratch_dir("file");
    let file = dir.join("note.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    let first = run(&["pub", "-u", "carol", &url, file.to_str().unwrap()], b"");
    let second = run(&["pub", "-t", "application/json", &url], b"{\"n\":1}");
    for output in [&first, &second] {
        assert_eq!(output.status.code(), Some(0), "{:?}", outcome(output));
    }
    let output = sub.wait_with_output(READ_TIMEOUT);
    assert_eq!(output.status.code(), Some(0), "{:?}", outcome(&output));
    assert_eq!(text(&output.stdout), "from a file\n{\"n\":1}");
    let headers = text(&output.stderr);
    assert!(
        headers.contains("From: carol\nContent-Type: text/plain; charset=utf-8\n"),
        "{headers}"
    );
    assert!(
        headers.contains("Content-Type: application/json\n"),
        "{headers}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `pub` prints is the bus's id for the message: a subscriber resuming after the first
/// id gets the second message and nothing else.
#[test]
fn pub_prints_the_id_a_subscriber_resumes_from() {
    let server = Server::start(&[]);
    let url = format!("http://{}/msgbus/ids", server.addr);
    let first = run(&["pub", &url], b"one");
    let second = run(&["pub", &url], b"two");
    let id = |output: &Output| -> u64 {
        let (code, stdout, stderr) = outcome(output);
        assert_eq!((code, stderr.as_str()), (Some(0), ""), "{stdout}");
        assert!(stdout.ends_with('\n'), "{stdout:?}");
        stdout.trim_end().parse().expect("an id")
    };
    let (first, second) = (id(&first), id(&second));
    assert_eq!(second, first + 1);
    let resumed = spawn_sub(&["-n", "1", "-w", "10", &format!("{url}?since={first}")]);
    let output = resumed.wait_with_output(READ_TIMEOUT);
    assert_eq!(outcome(&output), (Some(0), "two".into(), String::new()));
}

#[test]
fn help_begins_with_a_usage_line_and_lists_the_exit_statuses() {
    for tool in ["pub", "sub"] {
        for flag in ["-h", "--help"] {
            let output = run(&[tool, flag], b"");
            let (code, stdout, stderr) = outcome(&output);
            assert_eq!((code, stderr.as_str()), (Some(0), ""), "{tool} {flag}");
            assert!(
                stdout.starts_with(&format!("usage: msgbus {tool} [-v] ")),
                "{stdout}"
            );
            assert!(stdout.contains("\nExit status: 0 "), "{stdout}");
        }
    }
    // Help wins over whatever else is on the line, and nothing is contacted.
    let output = run(&["pub", "http://127.0.0.1:1/x", "--help"], b"");
    assert_eq!(output.status.code(), Some(0));
}

/// Exit status 2: the command line, the URL or a local file is wrong; no server is contacted
/// (port 1 would have given 3).
#[test]
fn bad_command_lines_and_files_exit_2() {
    let pub_usage = "usage: msgbus pub [-v] [-t TYPE] [-u USER[:PASS]] [--token TOKEN] \
                     [--cacert FILE] [-k] URL [FILE]\n";
    let sub_usage = "usage: msgbus sub [-v] [-n COUNT] [-w SECS] [-u USER[:PASS]] \
                     [--token TOKEN] [--cacert FILE] [-k] URL\n";
    let url = "http://127.0.0.1:1/msgbus/x";
    let cases: &[(&[&str], String)] = &[
        (&["pub"], format!("msgbus pub: no URL\n{pub_usage}")),
        (
            &["sub", url, url],
            format!("msgbus sub: unexpected argument \"{url}\"\n{sub_usage}"),
        ),
        (
            &["sub", "-t", "text/plain", url],
            format!("msgbus sub: invalid option '-t'\n{sub_usage}"),
        ),
        (
            &["pub", "-n", "1", url],
            format!("msgbus pub: invalid option '-n'\n{pub_usage}"),
        ),
        (
            &["sub", "-w", "0", url],
            format!("msgbus sub: -w 0: not a positive number of seconds\n{sub_usage}"),
        ),
        (
            &["sub", "-n", "many", url],
            format!("msgbus sub: -n many: not a number\n{sub_usage}"),
        ),
        (
            &["pub", "ftp://127.0.0.1/x"],
            format!("msgbus pub: ftp://127.0.0.1/x: only http:// and https:// URLs\n{pub_usage}"),
        ),
        (
            &["pub", "--token", "a b", url],
            format!(
                "msgbus pub: --token: empty, or holds spaces or control characters\n{pub_usage}"
            ),
        ),
        (
            &["pub", url, "/nonexistent/msgbus-file"],
            "msgbus pub: /nonexistent/msgbus-file: No such file or directory (os error 2)\n".into(),
        ),
        (
            &[
                "sub",
                "--cacert",
                "/nonexistent/ca.pem",
                "https://127.0.0.1:1/x",
            ],
            "msgbus sub: /nonexistent/ca.pem: I/O error: No such file or directory (os error 2)\n"
                .into(),
        ),
    ];
    for (args, want) in cases {
        let output = run(args, b"");
        assert_eq!(
            outcome(&output),
            (Some(2), String::new(), want.clone()),
            "{args:?}"
        );
    }
}

/// Exit status 3: nothing listens, or TLS fails (a plain listener, an untrusted certificate),
/// or the server never answers.
#[test]
fn no_connection_or_no_trust_exits_3() {
    let port = closed_port();
    for tool in ["pub", "sub"] {
        let url = format!("http://127.0.0.1:{port}/msgbus/x");
        let (code, stdout, stderr) = outcome(&run(&[tool, &url], b""));
        assert_eq!((code, stdout.as_str()), (Some(3), ""), "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "msgbus {tool}: 127.0.0.1:{port}: Connection refused"
            )),
            "{stderr}"
        );
    }

    let server = Server::start(&[]);
    let certs = make_cert("untrusted");
    // A TLS client at a plain HTTP listener: the handshake fails, named as TLS.
    let plain = format!("https://{}/msgbus/x", server.addr);
    let (code, _, stderr) = outcome(&run(&["pub", "-k", &plain], b""));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.starts_with(&format!("msgbus pub: {}: TLS: ", server.addr)),
        "{stderr}"
    );

    // The server's certificate is not the one the client trusts.
    let tls = start_tls(&certs);
    let other = make_cert("other");
    let url = format!("https://{}/msgbus/x", tls.tls_addr.unwrap());
    for tool in ["pub", "sub"] {
        let output = run(&[tool, "--cacert", &other.cert(), &url], b"");
        let (code, stdout, stderr) = outcome(&output);
        assert_eq!((code, stdout.as_str()), (Some(3), ""), "{stderr}");
        assert_eq!(
            stderr,
            format!(
                "msgbus {tool}: {}: TLS: invalid peer certificate: UnknownIssuer\n",
                tls.tls_addr.unwrap()
            )
        );
    }
}

/// A server that takes the connection and never answers: `sub` gives up on its own, saying so.
#[test]
fn sub_gives_up_on_a_server_that_never_answers() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/msgbus/x", silent.local_addr().unwrap());
    let output = spawn_sub(&["-w", "0.5", &url]).wait_with_output(READ_TIMEOUT);
    assert_eq!(
        outcome(&output),
        (
            Some(3),
            String::new(),
            "msgbus sub: no answer within 0.5 s\n".into()
        )
    );
}

/// Exit status 3 too when the stream ends before COUNT messages; 0 when no count was asked for.
#[test]
fn a_stream_that_ends_early_is_an_error_only_with_a_count() {
    let server = Server::start(&[]);
    let url = format!("http://{}/msgbus/short", server.addr);
    let counted = spawn_sub(&["-n", "2", "-w", "10", &url]);
    let open = spawn_sub(&["-w", "10", &url]);
    server.wait_for_counter("subscribers", |n| n >= 2, "subs never subscribed");
    assert_eq!(run(&["pub", &url], b"only").status.code(), Some(0));
    // Both have the message before the server goes away.
    server.wait_for_counter("delivered", |n| n >= 2, "not delivered");
    server.terminate();
    assert_eq!(
        outcome(&counted.wait_with_output(READ_TIMEOUT)),
        (
            Some(3),
            "only".into(),
            format!(
                "msgbus sub: {}: the stream ended after 1 of 2 messages\n",
                url_authority(&url)
            )
        )
    );
    assert_eq!(
        outcome(&open.wait_with_output(READ_TIMEOUT)),
        (Some(0), "only".into(), String::new())
    );
}

/// As `Server::wait_for_counter("subscribers", ..)`, for a server that wants `authorization`
/// (bob:pw) on /status.json too.
fn wait_for_a_subscriber(server: &Server, authorization: &str) {
    let request = format!("GET /status.json HTTP/1.0\r\n{authorization}\r\n");
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..100_000 {
        if json_number(&server.exchange(request.as_bytes()), "subscribers") > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "sub never subscribed");
    }
    panic!("sub never subscribed in 100000 looks");
}

fn url_authority(url: &str) -> &str {
    url.trim_start_matches("http://").split('/').next().unwrap()
}

/// Exit status 4: `-w SECS` passed with nothing arriving on an open stream.
#[test]
fn sub_exits_4_when_nothing_arrives_for_w_seconds() {
    let server = Server::start(&[]);
    let url = format!("http://{}/msgbus/quiet", server.addr);
    let output = spawn_sub(&["-w", "0.3", &url]).wait_with_output(READ_TIMEOUT);
    assert_eq!(
        outcome(&output),
        (
            Some(4),
            String::new(),
            "msgbus sub: nothing received for 0.3 s\n".into()
        )
    );
}

/// Exit status 1: the server refused, with its status and its one-line reason.
#[test]
fn refusals_exit_1_with_the_servers_reason() {
    let server = Server::start(&["-s", "pw"]);
    let url = format!("http://{}/msgbus/x", server.addr);
    for tool in ["pub", "sub"] {
        for args in [vec![tool, &url], vec![tool, "-u", "bob:guess", &url]] {
            let output = run(&args, b"");
            assert_eq!(
                outcome(&output),
                (
                    Some(1),
                    String::new(),
                    format!("msgbus {tool}: 401 Unauthorized: unauthorized\n")
                ),
                "{args:?}"
            );
        }
    }
    // -v shows the whole answer.
    let (code, _, stderr) = outcome(&run(&["pub", "-v", &url], b""));
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\r\nWWW-Authenticate: Basic realm=\"msgbus\"\r\n"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("\r\n\r\nunauthorized\n\nmsgbus pub: 401 Unauthorized: unauthorized\n"),
        "{stderr}"
    );
}

/// `-u USER:PASS` against `-s`, for both tools; the user is the message's From.
#[test]
fn basic_credentials_against_a_secret() {
    let server = Server::start(&["-s", "pw"]);
    let url = format!("http://{}/msgbus/basic", server.addr);
    let sub = spawn_sub(&["-v", "-n", "1", "-w", "10", "-u", "bob:pw", &url]);
    wait_for_a_subscriber(&server, "Authorization: Basic Ym9iOnB3\r\n");
    let published = run(&["pub", "-u", "carol:pw", &url], b"hi");
    assert_eq!(
        published.status.code(),
        Some(0),
        "{:?}",
        outcome(&published)
    );
    let output = sub.wait_with_output(READ_TIMEOUT);
    assert_eq!(
        outcome(&output),
        (
            Some(0),
            "hi".into(),
            "From: carol\nContent-Type: text/plain\nContent-Length: 2\n".into()
        )
    );
}

/// `--token` against `--jwt-secret`: sent as Bearer, or with `-u` as `?token=` beside Basic.
#[test]
fn tokens_against_a_jwt_secret() {
    let key = JwtKey::new(b"sekrit");
    let exp = now() + 600;
    let reader = key.sign(&format!(r#"{{"exp":{exp},"subscribe":["news/*"]}}"#));
    let writer = key.sign(&format!(
        r#"{{"exp":{exp},"sub":"desk","publish":["news/*"]}}"#
    ));
    let server = Server::start(&["--jwt-secret", "sekrit"]);
    let url = format!("http://{}/msgbus/news/today", server.addr);
    let sub = spawn_sub(&["-v", "-n", "1", "-w", "10", "--token", &reader, &url]);
    server.wait_for_counter("subscribers", |n| n > 0, "sub never subscribed");
    let published = run(&["pub", "--token", &writer, &url], b"scoop");
    let (code, stdout, stderr) = outcome(&published);
    assert_eq!((code, stderr.as_str()), (Some(0), ""), "{stdout}");
    assert_eq!(
        outcome(&sub.wait_with_output(READ_TIMEOUT)),
        (
            Some(0),
            "scoop".into(),
            "From: desk\nContent-Type: text/plain\nContent-Length: 5\n".into()
        )
    );
    let refused = [
        (vec!["sub", &url], "401 Unauthorized: a token is required"),
        (vec!["pub", "--token", &reader, &url], "403 Forbidden"),
    ];
    for (args, want) in refused {
        let (code, stdout, stderr) = outcome(&run(&args, b"x"));
        assert_eq!((code, stdout.as_str()), (Some(1), ""), "{args:?}");
        let prefix = format!("msgbus {}: {want}", args[0]);
        assert!(stderr.starts_with(&prefix), "{args:?}: {stderr}");
    }

    // Both a secret and tokens: Basic in the header, the token in the query.
    let both = Server::start(&["-s", "pw", "--jwt-secret", "sekrit"]);
    let url = format!("http://{}/msgbus/news/today", both.addr);
    let sub = spawn_sub(&[
        "-n", "1", "-w", "10", "-u", "bob:pw", "--token", &reader, &url,
    ]);
    wait_for_a_subscriber(&both, "Authorization: Basic Ym9iOnB3\r\n");
    let published = run(
        &["pub", "-u", "carol:pw", "--token", &writer, &url],
        b"both",
    );
    assert_eq!(
        published.status.code(),
        Some(0),
        "{:?}",
        outcome(&published)
    );
    assert_eq!(
        outcome(&sub.wait_with_output(READ_TIMEOUT)),
        (Some(0), "both".into(), String::new())
    );
}

/// https:// with the server's certificate trusted through `--cacert`, `$SSL_CERT_FILE`, or not
/// checked at all (`-k`).
#[test]
fn https_with_a_private_ca() {
    let certs = make_cert("https");
    let server = start_tls(&certs);
    let url = format!("https://{}/msgbus/tls", server.tls_addr.unwrap());
    let sub = spawn_sub(&["-n", "3", "-w", "10", "--cacert", &certs.cert(), &url]);
    server.wait_for_counter("subscribers", |n| n > 0, "sub never subscribed");
    let ids: Vec<u64> = [
        run(&["pub", "--cacert", &certs.cert(), &url], b"one "),
        run_with(
            Command::new(CLIENT)
                .args(["pub", &url])
                .env("SSL_CERT_FILE", certs.cert()),
            b"two ",
        ),
        run(&["pub", "-k", &url], b"three"),
    ]
    .iter()
    .map(|output| {
        let (code, stdout, stderr) = outcome(output);
        assert_eq!((code, stderr.as_str()), (Some(0), ""), "{stdout}");
        stdout.trim_end().parse().expect("an id")
    })
    .collect();
    assert_eq!(ids, [ids[0], ids[0] + 1, ids[0] + 2]);
    assert_eq!(
        outcome(&sub.wait_with_output(READ_TIMEOUT)),
        (Some(0), "one two three".into(), String::new())
    );
}

/// A certificate and key made for the test, in their own directory, removed when dropped.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn cert(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed ECDSA certificate for 127.0.0.1 and localhost, its subject naming `name`.
fn make_cert(name: &str) -> Certs {
    let dir = scratch_dir(name);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    // Named apart, so one certificate is not taken for the issuer of another.
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("msgbus test {name}"));
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    Certs { dir }
}

fn start_tls(certs: &Certs) -> Server {
    Server::start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &certs.cert(),
        "--tls-key",
        &certs.key(),
    ])
}
