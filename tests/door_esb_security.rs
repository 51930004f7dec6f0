//! The eventsource-broker door against hostile clients: socket ids that cannot be guessed,
//! tokens compared in constant time, channels private to their api key, data that cannot forge
//! events, and HEAD answers without a body. One regression test per finding of issue 13.
//! With `--esb-native-channels` (issue 18), key K's channel C is the native `esb/K/C`: open
//! only to token holders, never without tokens, never ambiguous between keys.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use msgbus::auth::JwtKey;

const HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
const PING: &str = "event:ping\ndata:{}\n\n";

/// A server with two users, `k1` and `k2`; the users file is removed when the test ends.
struct Door {
    server: Server,
    users: std::path::PathBuf,
}

impl Drop for Door {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.users);
    }
}

fn start(test: &str, extra: &[&str]) -> Door {
    let users =
        std::env::temp_dir().join(format!("msgbus-esb-security-{test}-{}", std::process::id()));
    std::fs::write(&users, "k1:s3cret\nk2:other\n").unwrap();
    let users_arg = users.display().to_string();
    let server = Server::start(&[&["--esb-users", users_arg.as_str()], extra].concat());
    Door { server, users }
}

fn secret(key: &str) -> &'static str {
    if key == "k1" {
        "s3cret"
    } else {
        "other"
    }
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

fn create_socket(server: &Server, key: &str, channel: &str) -> String {
    let answer = server.post_form(
        "/socket",
        &format!("{}&channel={channel}", esb_credentials(key, secret(key))),
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    body(&answer)
        .split("\"socket\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no socket in {answer}"))
        .to_string()
}

/// Publishes with `POST /event` as `key`; `form` is the rest of the form, already encoded.
fn publish_event(server: &Server, key: &str, form: &str) -> String {
    server.post_form(
        "/event",
        &format!("{}&{form}", esb_credentials(key, secret(key))),
    )
}

fn stream(server: &Server, socket: &str, extra_headers: &str) -> TcpStream {
    let mut stream = server.connect();
    let request =
        format!("GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\n{extra_headers}\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_same_len(&mut stream, HEAD), HEAD);
    stream
}

/// The next event on an eventsource-broker stream, whole.
fn next_event(stream: &mut TcpStream) -> String {
    String::from_utf8(read_until(stream, b"\n\n")).unwrap()
}

/// The data of an event with a 24-hex-digit id (and no name).
fn event<'a>(data_lines: &'a [&'a str]) -> impl Fn(&str) -> bool + 'a {
    move |got: &str| {
        let Some(rest) = got.strip_prefix("id:") else {
            return false;
        };
        let data: String = data_lines.iter().map(|l| format!("data:{l}\n")).collect();
        rest.len() == 25 + data.len() + 1 && rest[25..] == format!("{data}\n")
    }
}

/// Socket ids were an LCG's output and a counter: one socket's id gave away the next. They
/// must be 128 random bits, written as the original wrote its ids (a UUID's shape).
#[test]
fn socket_ids_are_unpredictable() {
    let door = start("ids", &[]);
    let ids: Vec<String> = (0..64)
        .map(|_| create_socket(&door.server, "k1", "c"))
        .collect();
    for id in &ids {
        let groups: Vec<&str> = id.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
        assert!(
            groups.iter().all(|g| g
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
            "{id}"
        );
    }
    // Every one of the 32 hex digits takes several values across 64 ids: no fixed or counted
    // part (the chance that a random digit is the same in all of them is 16^-63).
    let digits: Vec<Vec<u8>> = ids.iter().map(|id| id.replace('-', "").into()).collect();
    for position in 0..32 {
        let first = digits[0][position];
        assert!(
            digits.iter().any(|d| d[position] != first),
            "hex digit {position} is the same in every id: {ids:?}"
        );
    }
    // The old generator: the next id's first half followed from the previous one's.
    for pair in digits.windows(2) {
        let half = |d: &[u8]| u64::from_str_radix(std::str::from_utf8(&d[..16]).unwrap(), 16);
        let (Ok(a), Ok(b)) = (half(&pair[0]), half(&pair[1])) else {
            continue;
        };
        let lcg = a
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        assert_ne!(b, lcg, "the next socket id follows from the previous one");
    }
}

/// The token was compared with `!=`, which stops at the first differing byte. A timing
/// difference of a few nanoseconds cannot be measured reliably over a loopback socket, so this
/// checks the code that compares: `verify_token` must go through a constant-time comparison.
#[test]
fn tokens_are_compared_in_constant_time() {
    let source = include_str!("../src/doors/eventsource_broker/codec.rs");
    let start = source
        .find("pub fn verify_token(")
        .expect("verify_token is where tokens are checked");
    let end = start + source[start..].find("\n}\n").expect("end of verify_token");
    let body = &source[start..end];
    assert!(
        body.contains("constant_time_eq("),
        "verify_token does not compare in constant time:\n{body}"
    );
    for early_exit in ["token != ", "token == ", "!= expected", "== expected"] {
        assert!(
            !body.contains(early_exit),
            "verify_token compares with {early_exit:?}:\n{body}"
        );
    }
}

/// A socket of key k2 on channel `chat` received what key k1 published on its `chat`. Each
/// key has its own channels (as the original's `user` + `channel` match): live events, events
/// from a socket, and the replay after a Last-Event-ID all stay with their key.
#[test]
fn channels_are_private_to_their_api_key() {
    let door = start("keys", &[]);
    let server = &door.server;
    let k1_socket = create_socket(server, "k1", "chat");
    let k2_socket = create_socket(server, "k2", "chat");
    let mut k1 = stream(server, &k1_socket, "");
    assert_eq!(read_same_len(&mut k1, PING), PING);
    let mut k2 = stream(server, &k2_socket, "");
    assert_eq!(read_same_len(&mut k2, PING), PING);

    assert_eq!(
        body(&publish_event(server, "k1", "channel=chat&data=k1-secret")),
        "{}"
    );
    assert_eq!(
        body(&publish_event(server, "k2", "channel=chat&data=k2-own")),
        "{}"
    );
    let got = next_event(&mut k2);
    assert!(event(&["k2-own"])(&got), "k2 got {got:?}");
    let got = next_event(&mut k1);
    assert!(event(&["k1-secret"])(&got), "k1 got {got:?}");

    // A browser's publish on its socket goes to its key's channel only.
    let answer = server.post_form(&format!("/socket/{k1_socket}"), "data=from-k1-page");
    assert_eq!(body(&answer), "Ok");
    let answer = server.post_form(&format!("/socket/{k2_socket}"), "data=from-k2-page");
    assert_eq!(body(&answer), "Ok");
    let got = next_event(&mut k1);
    assert!(event(&["from-k1-page"])(&got), "k1 got {got:?}");
    let got = next_event(&mut k2);
    assert!(event(&["from-k2-page"])(&got), "k2 got {got:?}");

    // Nor does a native publish on `chat` reach either key's sockets.
    server.publish("chat", "text/plain", b"native");
    publish_event(server, "k2", "channel=chat&data=k2-after-native");
    let got = next_event(&mut k2);
    assert!(event(&["k2-after-native"])(&got), "k2 got {got:?}");

    // Replay: everything after id 1 on k2's `chat` is k2's own.
    let k2_again = create_socket(server, "k2", "chat");
    let mut replay = stream(
        server,
        &k2_again,
        "Last-Event-ID: 000000000000000000000001\r\n",
    );
    let got = String::from_utf8(read_until(&mut replay, b"data:k2-after-native\n\n")).unwrap();
    let events: Vec<String> = got.split_inclusive("\n\n").map(str::to_string).collect();
    assert_eq!(events.len(), 3, "replay to k2: {got:?}");
    for (got, want) in events
        .iter()
        .zip(["k2-own", "from-k2-page", "k2-after-native"])
    {
        assert!(
            event(&[want])(got),
            "replay to k2 gave {got:?}, want {want}"
        );
    }
    assert_silent(&mut replay, std::time::Duration::from_millis(100));
}

/// Data with a bare CR went out as one `data:` line, so any publisher wrote its own `id:` and
/// `event:` lines into every subscriber's stream. CR, LF and CRLF each end a data line, on the
/// authenticated publish and on a socket's publish alike.
#[test]
fn data_with_line_breaks_cannot_forge_events() {
    let door = start("crlf", &[]);
    let server = &door.server;
    let socket = create_socket(server, "k1", "c");
    let mut sub = stream(server, &socket, "");
    assert_eq!(read_same_len(&mut sub, PING), PING);
    let forged = "x%0Devent:forged%0Did:1%0D%0Ddata:injected";
    let want = ["x", "event:forged", "id:1", "", "data:injected"];
    publish_event(server, "k1", &format!("channel=c&data={forged}"));
    let got = String::from_utf8(read_until(&mut sub, b"injected\n\n")).unwrap();
    assert!(event(&want)(&got), "got {got:?}");
    server.post_form(&format!("/socket/{socket}"), &format!("data={forged}"));
    let got = String::from_utf8(read_until(&mut sub, b"injected\n\n")).unwrap();
    assert!(event(&want)(&got), "got {got:?}");
    server.post_form(&format!("/socket/{socket}"), "data=a%0D%0Ab%0Ac%0D");
    let got = String::from_utf8(read_until(&mut sub, b"data:\n\n")).unwrap();
    assert!(event(&["a", "b", "c", ""])(&got), "got {got:?}");
}

/// An event name (or a channel) with CR, LF or NUL is refused with a 400 and a one-line
/// reason, in the door's own error shape (a text body, no Content-Type).
#[test]
fn names_with_line_breaks_are_refused() {
    let door = start("names", &[]);
    let server = &door.server;
    let socket = create_socket(server, "k1", "c");
    let mut sub = stream(server, &socket, "");
    assert_eq!(read_same_len(&mut sub, PING), PING);
    for name in ["a%0Db", "a%0Ab", "a%00b", "a%0D%0Aid:7"] {
        for answer in [
            publish_event(server, "k1", &format!("channel=c&data=x&name={name}")),
            server.post_form(&format!("/socket/{socket}"), &format!("data=x&name={name}")),
        ] {
            assert!(
                answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{name}: {answer}"
            );
            assert!(!answer.contains("Content-Type"), "{answer}");
            let reason = body(&answer);
            assert_eq!(reason, "Invalid param: name", "{name}");
        }
    }
    for channel in ["a%0Db", "a%0Ab", "a%00b"] {
        let answer = publish_event(server, "k1", &format!("channel={channel}&data=x"));
        assert_eq!(body(&answer), "Invalid param: channel", "{answer}");
        let answer = server.post_form(
            "/socket",
            &format!("{}&channel={channel}", esb_credentials("k1", "s3cret")),
        );
        assert_eq!(body(&answer), "Invalid param: channel", "{answer}");
    }
    // Nothing of it reached the stream; a good name still does.
    publish_event(server, "k1", "channel=c&data=ok&name=greet");
    let got = next_event(&mut sub);
    assert!(got.starts_with("event:greet\nid:"), "{got:?}");
    assert!(got.ends_with("\ndata:ok\n\n"), "{got:?}");
}

/// HEAD on the door's paths answers with a head and nothing after it.
#[test]
fn head_answers_carry_no_body() {
    let door = start("head", &[]);
    let server = &door.server;
    let socket = create_socket(server, "k1", "c");
    for target in [
        format!("/eventsource?socket={socket}"),
        "/eventsource?socket=nope".to_string(),
        "/eventsource".to_string(),
        "/socket".to_string(),
        format!("/socket/{socket}"),
        "/event".to_string(),
    ] {
        let answer = server.exchange(
            format!("HEAD {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 "), "{target}: {answer}");
        assert_eq!(body(&answer), "", "HEAD {target}: {answer:?}");
        assert!(answer.ends_with("\r\n\r\n"), "HEAD {target}: {answer:?}");
    }
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";

/// A refusal as the native paths write it.
fn refusal(status: &str, reason: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    )
}

/// A token for `--jwt-secret sekrit` with these claims (an hour to live).
fn token(claims: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    JwtKey::new(b"sekrit").sign(&format!(r#"{{"exp":{exp},{claims}}}"#))
}

/// Without `--esb-native-channels`, `esb/k1/chat` is an ordinary native channel: door events
/// of k1's `chat` never reach it, nor does a publish on it reach the door.
#[test]
fn without_the_option_native_esb_names_are_not_the_doors() {
    let door = start("not-native", &[]);
    let server = &door.server;
    let socket = create_socket(server, "k1", "chat");
    let mut k1 = stream(server, &socket, "");
    assert_eq!(read_same_len(&mut k1, PING), PING);
    let mut native = subscribe(
        server,
        "GET /msgbus/esb/k1/chat HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        SSE_HEAD,
    );
    assert_eq!(
        body(&publish_event(server, "k1", "channel=chat&data=door")),
        "{}"
    );
    let got = next_event(&mut k1);
    assert!(event(&["door"])(&got), "k1 got {got:?}");
    assert_silent(&mut native, std::time::Duration::from_millis(200));
    let answer = server.publish("esb/k1/chat", "text/plain", b"native");
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    let got = String::from_utf8(read_until(&mut native, b"\n\n")).unwrap();
    assert!(got.ends_with("\ndata: native\n\n"), "{got:?}");
    assert_silent(&mut k1, std::time::Duration::from_millis(200));
}

/// With `--esb-native-channels`, k1's `chat` is `esb/k1/chat` both ways, for a token granting
/// it; without a token 401, with another key's grant 403.
#[test]
fn native_channels_are_the_doors_for_token_holders_only() {
    let door = start(
        "native",
        &["--esb-native-channels", "--jwt-secret", "sekrit"],
    );
    let server = &door.server;
    let socket = create_socket(server, "k1", "chat");
    let mut k1 = stream(server, &socket, "");
    assert_eq!(read_same_len(&mut k1, PING), PING);
    let reader = token(r#""subscribe":["esb/k1/*"]"#);
    let mut native = subscribe(
        server,
        &format!("GET /msgbus/esb/k1/chat?token={reader} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"),
        SSE_HEAD,
    );
    assert_eq!(
        body(&publish_event(
            server,
            "k1",
            "channel=chat&data=door&name=greet"
        )),
        "{}"
    );
    let got = next_event(&mut k1);
    let id = u64::from_str_radix(&got[15..39], 16).unwrap();
    assert_eq!(got, format!("event:greet\nid:{id:024x}\ndata:door\n\n"));
    let got = String::from_utf8(read_until(&mut native, b"\n\n")).unwrap();
    assert_eq!(got, format!("id: {id}\nevent: greet\ndata: door\n\n"));

    // A native publisher with a grant reaches the door's sockets.
    let writer = token(r#""sub":"desk","publish":["esb/k1/*"]"#);
    let answer = server.post(
        &format!("/msgbus/esb/k1/chat?token={writer}"),
        "Content-Type: text/plain\r\n",
        b"native",
    );
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    let got = next_event(&mut k1);
    assert!(event(&["native"])(&got), "k1 got {got:?}");
    let got = String::from_utf8(read_until(&mut native, b"\n\n")).unwrap();
    assert!(got.ends_with("\ndata: native\n\n"), "{got:?}");

    // k2's channels are k2's: no token, another key's grant, a subtree beyond the grant.
    let bearer = "WWW-Authenticate: Bearer realm=\"msgbus\"\r\n";
    let k2_reader = token(r#""subscribe":["esb/k2/*"]"#);
    let cases = [
        (
            "GET /msgbus/esb/k1/chat".to_string(),
            refusal("401 Unauthorized", "a token is required", bearer),
        ),
        (
            format!("GET /msgbus/esb/k1/chat?token={k2_reader}"),
            refusal(
                "403 Forbidden",
                "token does not allow you to subscribe to esb/k1/chat",
                "",
            ),
        ),
        (
            format!("GET /msgbus/esb/?token={reader}"),
            refusal(
                "403 Forbidden",
                "token does not allow you to subscribe to esb/",
                "",
            ),
        ),
        (
            format!("POST /msgbus/esb/k1/chat?token={reader}"),
            refusal(
                "403 Forbidden",
                "token does not allow you to publish to esb/k1/chat",
                "",
            ),
        ),
    ];
    for (line, want) in cases {
        let got = server.exchange(
            format!("{line} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(got, want, "{line}");
    }
    assert_silent(&mut k1, std::time::Duration::from_millis(100));
}

/// Native esb/K/C names without tokens would open every key's events to anyone: msgbus does
/// not start, and says what to add.
#[test]
fn native_channels_without_tokens_do_not_start() {
    let users = std::env::temp_dir().join(format!("msgbus-esb-native-{}", std::process::id()));
    std::fs::write(&users, "k1:s3cret\n").unwrap();
    let users_arg = users.display().to_string();
    let out = run_to_exit(
        &["--esb-users", &users_arg, "--esb-native-channels"],
        "msgbus without tokens",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "msgbus: --esb-native-channels opens every api key's channels to native clients: it needs --jwt-secret or --jwt-secret-file (see msgbus --help)\n"
    );
    let _ = std::fs::remove_file(users);
}

/// Key `a/b`'s channel `c` and key `a`'s channel `b/c` would both be `esb/a/b/c`: a users file
/// with a `/` in a key is refused, naming its line.
#[test]
fn native_channels_refuse_keys_with_a_slash() {
    let users = std::env::temp_dir().join(format!("msgbus-esb-slash-{}", std::process::id()));
    std::fs::write(&users, "k1:s3cret\n# comment\na/b:other\n").unwrap();
    let users_arg = users.display().to_string();
    let out = run_to_exit(
        &[
            "-l",
            "127.0.0.1",
            "-p",
            "0",
            "--esb-users",
            &users_arg,
            "--esb-native-channels",
            "--jwt-secret",
            "sekrit",
        ],
        "msgbus with a key holding '/'",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("msgbus: {users_arg}:3: api key \"a/b\" holds '/', which --esb-native-channels reads as the end of the key (esb/KEY/CHANNEL): rename the key or drop the option\n")
    );
    // Without the option the key is just a key.
    let server = Server::start(&["--esb-users", &users_arg]);
    let answer = server.post_form(
        "/socket",
        &format!("{}&channel=c", esb_credentials("a/b", "other")),
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let _ = std::fs::remove_file(users);
}

/// The users file is read again on SIGHUP: a key with '/' there is refused as at start, and the
/// running users stay.
#[test]
fn native_channels_refuse_keys_with_a_slash_on_reload() {
    let door = start(
        "native-reload",
        &["--esb-native-channels", "--jwt-secret", "sekrit"],
    );
    std::fs::write(&door.users, "k1:s3cret\na/b:other\n").unwrap();
    door.server.signal(libc::SIGHUP);
    let users = door.users.display().to_string();
    door.server.wait_for_log(
        &format!("SIGHUP: keeping the old configuration: {users}:2: api key \"a/b\" holds '/'"),
        1,
    );
    create_socket(&door.server, "k1", "chat");
    let answer = door.server.post_form(
        "/socket",
        &format!("{}&channel=c", esb_credentials("a/b", "other")),
    );
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
}
