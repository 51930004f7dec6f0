//! The eventsource-broker door: the requests its clients (the eshq gem, es.js) send, the replies
//! they expect, and its channels kept apart from the native doors' (they belong to an api key).

mod common;

use std::io::Write;

use common::*;

const HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
const PING: &str = "event:ping\ndata:{}\n\n";

fn start(test: &str) -> (Server, std::path::PathBuf) {
    let users =
        std::env::temp_dir().join(format!("msgbus-esb-users-{test}-{}", std::process::id()));
    std::fs::write(&users, "# key:secret\nk1:s3cret\n").unwrap();
    let server = Server::start(&["--esb-users", &users.display().to_string()]);
    (server, users)
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").unwrap().1
}

fn create_socket(server: &Server, channel: &str) -> String {
    let answer = server.post_form(
        "/socket",
        &format!("{}&channel={channel}", esb_credentials("k1", "s3cret")),
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(header_value(&answer, "Content-Type"), "application/json");
    let json = body(&answer);
    let socket = json
        .split("\"socket\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        json,
        format!("{{\"channel\":\"{channel}\",\"presence_id\":null,\"socket\":\"{socket}\"}}")
    );
    socket
}

#[test]
fn sockets_streams_and_publishing_as_the_original_answered() {
    let (server, users) = start("stream");
    let socket = create_socket(&server, "news");
    let mut stream = subscribe(
        &server,
        &format!("GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\n\r\n"),
        &format!("{HEAD}{PING}"),
    );
    let answer = server.post_form(
        "/event",
        &format!(
            "{}&channel=news&data=hello&name=greet",
            esb_credentials("k1", "s3cret")
        ),
    );
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    );
    let event = String::from_utf8(read_until(&mut stream, b"\n\n")).unwrap();
    assert!(event.starts_with("event:greet\nid:"), "{event}");
    assert!(event.ends_with("\ndata:hello\n\n"), "{event}");
    assert_eq!(
        event.len(),
        "event:greet\nid:".len() + 24 + "\ndata:hello\n\n".len()
    );
    let answer = server.post_form(&format!("/socket/{socket}"), "data=from+the+page");
    assert_eq!(body(&answer), "Ok");
    let event = String::from_utf8(read_until(&mut stream, b"\n\n")).unwrap();
    assert!(event.ends_with("\ndata:from the page\n\n"), "{event}");
    // Channels belong to the api key, as in the original: a native publish on `news` is not
    // k1's `news`, and k1's events do not reach native subscribers of `news`.
    let mut native = subscribe(
        &server,
        "GET /msgbus/news HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n",
    );
    server.post_form(&format!("/socket/{socket}"), "data=to+k1+only");
    let event = String::from_utf8(read_until(&mut stream, b"\n\n")).unwrap();
    assert!(event.ends_with("\ndata:to k1 only\n\n"), "{event}");
    let id = server.publish_id("news", b"native");
    let event = String::from_utf8(read_until(&mut native, b"\n\n")).unwrap();
    assert_eq!(event, format!("id: {id}\ndata: native\n\n"));
    server.post_form(&format!("/socket/{socket}"), "data=after+native");
    let event = String::from_utf8(read_until(&mut stream, b"\n\n")).unwrap();
    assert!(event.ends_with("\ndata:after native\n\n"), "{event}");
    let _ = std::fs::remove_file(users);
}

#[test]
fn refusals_are_the_originals() {
    let (server, users) = start("refusals");
    let cases = [
        (
            "/socket",
            "channel=x".to_string(),
            "HTTP/1.1 401 Unauthorized",
            "Access Denied - Missing Credentials",
        ),
        (
            "/socket",
            format!("{}&channel=x", esb_credentials("nobody", "x")),
            "HTTP/1.1 404 Not Found",
            "User not found",
        ),
        (
            "/event",
            format!("{}&channel=x&data=y", esb_credentials("k1", "wrong")),
            "HTTP/1.1 401 Unauthorized",
            "Access Denied - Bad Credentials",
        ),
        (
            "/event",
            format!("{}&channel=x", esb_credentials("k1", "s3cret")),
            "HTTP/1.1 400 Bad Request",
            "Missing param: data",
        ),
        (
            "/socket/nope",
            "data=x".to_string(),
            "HTTP/1.1 404 Not Found",
            "Socket Not Found",
        ),
    ];
    for (path, form, status, reason) in cases {
        let answer = server.post_form(path, &form);
        assert!(
            answer.starts_with(&format!("{status}\r\n")),
            "{path}: {answer}"
        );
        assert_eq!(body(&answer), reason, "{path}");
    }
    let answer = server
        .exchange(b"GET /eventsource?socket=nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(body(&answer), "Socket Not Found");
    let _ = std::fs::remove_file(users);
}

/// Publishes `data` on k1's channel `channel` with `POST /event`.
fn publish_event(server: &Server, channel: &str, data: &str) {
    let form = format!(
        "{}&channel={channel}&data={data}",
        esb_credentials("k1", "s3cret")
    );
    assert_eq!(body(&server.post_form("/event", &form)), "{}");
}

/// The id of an unnamed event `id:ID\ndata:...\n\n`.
fn event_id(event: &str) -> &str {
    let id = event
        .strip_prefix("id:")
        .unwrap_or_else(|| panic!("{event}"));
    &id[..24]
}

#[test]
fn one_event_for_xhr_and_replay_from_last_event_id() {
    let (server, users) = start("xhr");
    let socket = create_socket(&server, "r");
    let mut live = subscribe(
        &server,
        &format!("GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\n\r\n"),
        &format!("{HEAD}{PING}"),
    );
    publish_event(&server, "r", "one");
    let first = String::from_utf8(read_until(&mut live, b"\n\n")).unwrap();
    publish_event(&server, "r", "two");
    let second = String::from_utf8(read_until(&mut live, b"\n\n")).unwrap();
    assert_eq!(second, format!("id:{}\ndata:two\n\n", event_id(&second)));
    // Replay after the first: the second, then live.
    let request = format!(
        "GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {}\r\n\r\n",
        event_id(&first)
    );
    let mut stream = subscribe(&server, &request, HEAD);
    assert_eq!(read_same_len(&mut stream, &second), second);
    // XMLHttpRequest: one event, then the end of the response.
    let mut xhr = server.connect();
    xhr.write_all(format!("GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\nX-Requested-With: XMLHttpRequest\r\n\r\n").as_bytes()).unwrap();
    assert_eq!(read_same_len(&mut xhr, HEAD), HEAD);
    // The request must be subscribed before the publish: the server says so in its count.
    server.wait_for_counter(
        "subscribers",
        |n| n >= 3,
        "the XHR request never subscribed",
    );
    publish_event(&server, "r", "three");
    let rest = String::from_utf8(read_to_end(&mut xhr)).unwrap();
    assert_eq!(rest, format!("id:{}\ndata:three\n\n", event_id(&rest)));
    let _ = std::fs::remove_file(users);
}

/// `Last-Event-ID` replays at most the 50 newest events after it, as the original did.
#[test]
fn replay_is_limited_to_fifty_events() {
    let (server, users) = start("limit");
    let socket = create_socket(&server, "many");
    // A live stream on the socket learns each event's id as it is published.
    let request = format!("GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut recorder = subscribe(&server, &request, HEAD);
    assert_eq!(read_same_len(&mut recorder, PING), PING);
    let mut events = Vec::new();
    for data in std::iter::once("before".to_string()).chain((0..60).map(|i| format!("m{i}"))) {
        publish_event(&server, "many", &data);
        let event = String::from_utf8(read_until(&mut recorder, b"\n\n")).unwrap();
        assert!(event.ends_with(&format!("data:{data}\n\n")), "{event}");
        events.push(event);
    }
    let before = event_id(&events[0]).to_string();
    let request = format!(
        "GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {before}\r\n\r\n"
    );
    let mut stream = subscribe(&server, &request, HEAD);
    let want: String = events[11..].concat();
    assert_eq!(read_same_len(&mut stream, &want), want);
    // And then live: the next event is the next message, not anything older.
    publish_event(&server, "many", "live");
    let live = String::from_utf8(read_until(&mut stream, b"\n\n")).unwrap();
    assert!(live.ends_with("data:live\n\n"), "{live}");
    let _ = std::fs::remove_file(users);
}

/// An idle stream gets `event:ping` 9 s after the last thing sent (the original's
/// `timeout 9000000`; there is no flag to shorten it, so this test takes 9 s).
#[test]
fn an_idle_stream_is_pinged_after_nine_seconds() {
    let (server, users) = start("ping");
    let socket = create_socket(&server, "quiet");
    let mut stream = subscribe(
        &server,
        &format!("GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\n\r\n"),
        &format!("{HEAD}{PING}"),
    );
    let opened = std::time::Instant::now();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    assert_eq!(read_same_len(&mut stream, PING), PING);
    // Not before 9 s (a lower bound only: a loaded machine may be late, never early).
    let waited = opened.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(8900),
        "{waited:?}"
    );
    let _ = std::fs::remove_file(users);
}

/// The transports the README says are not served answer 501.
#[test]
fn iframe_and_script_transports_are_not_implemented() {
    let (server, users) = start("501");
    let socket = create_socket(&server, "x");
    for transport in ["iframe", "script.js"] {
        let got = server.exchange(
            format!("GET /eventsource?socket={socket}&transport={transport} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(got, "HTTP/1.1 501 Not Implemented\r\nServer: msgbus\r\nContent-Type: text/plain\r\nContent-Length: 47\r\nConnection: close\r\n\r\niframe and script transports are not supported\n", "{transport}");
    }
    let _ = std::fs::remove_file(users);
}

/// The browser client's files as es.js users fetch them: `/es.js` with the broker's origin where
/// the original's template had `$origin$`, the iframe page and its script, and the same under
/// `/static/`. GET and HEAD only; other paths stay the native server's.
#[test]
fn the_browser_client_is_served_as_the_original_served_it() {
    let users = std::env::temp_dir().join(format!("msgbus-esb-users-js-{}", std::process::id()));
    std::fs::write(&users, "k1:s3cret\n").unwrap();
    let users_arg = users.display().to_string();
    let server = Server::start(&[
        "--esb-users",
        &users_arg,
        "--esb-origin",
        "https://push.example.com:8443/",
    ]);
    let get = |target: &str| {
        server.exchange(
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    let head = |content_type: &str, body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
    };
    let js = "text/javascript; charset=utf-8";
    let es = get("/es.js");
    let es_body = body(&es).to_string();
    assert_eq!(es, format!("{}{es_body}", head(js, &es_body)));
    assert!(es_body.contains("var configured = \"https://push.example.com:8443\";"));
    assert!(!es_body.contains("$origin$"));
    assert!(es_body.contains("window.ESHQ = ESHQ;"));
    assert_eq!(get("/static/eshq.js"), es);

    // The page es.js opens, with its cache-busting query, and the script it loads.
    let page = get("/iframe?channel=chat&socket=0c4d&t=1700000000000");
    let page_body = body(&page).to_string();
    assert_eq!(
        page,
        format!(
            "{}{page_body}",
            head("text/html; charset=utf-8", &page_body)
        )
    );
    assert!(page_body.contains("<script src=\"iframe.js\"></script>"));
    assert_eq!(get("/static/iframe.html"), page);
    let script = get("/iframe.js");
    let script_body = body(&script).to_string();
    assert_eq!(script, format!("{}{script_body}", head(js, &script_body)));
    assert!(script_body.contains("\"/eventsource?socket=\""));
    assert_eq!(get("/static/iframe.js"), script);

    let head_only =
        server.exchange(b"HEAD /es.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(head_only, head(js, &es_body));
    for target in ["/iframe/", "/static/eventsource.js", "/es.js/x"] {
        assert!(
            get(target).starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{target}"
        );
    }
    let _ = std::fs::remove_file(users);
}

/// Without `--esb-origin`, es.js takes the origin it was loaded from.
#[test]
fn es_js_without_an_origin_takes_its_own() {
    let (server, users) = start("js-origin");
    let es = server.exchange(b"GET /es.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(es.starts_with("HTTP/1.1 200 OK\r\n"), "{es}");
    assert!(body(&es).contains("var configured = \"\";"));
    let _ = std::fs::remove_file(users);
}
