use super::*;

fn q(s: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    parse_qs(s.as_bytes())
}

fn op(method: &str, target: &str, body: &str) -> Result<Op, Reject> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = q(query);
    let form = q(body);
    parse(
        &Request {
            method,
            path: path.as_bytes(),
            query: &query,
            form: &form,
        },
        true,
    )
}

fn s(x: &str) -> String {
    x.to_string()
}

use Format::{Json, Jsonp};

#[test]
fn parse_table() {
    let err = |f, k| Err(Reject::Protocol(f, k));
    let cases: Vec<(&str, &str, &str, Result<Op, Reject>)> = vec![
        // tests/simple-comet_tests.py
        (
            "POST",
            "/channels.json",
            "channel_id=chan",
            Ok(Op::CreateChannel {
                format: Json,
                channel_id: s("chan"),
                use_sessions: false,
                max_messages: None,
            }),
        ),
        (
            "POST",
            "/channels.json",
            "channel_id=chan-sess&use_sessions=1",
            Ok(Op::CreateChannel {
                format: Json,
                channel_id: s("chan-sess"),
                use_sessions: true,
                max_messages: None,
            }),
        ),
        (
            "POST",
            "/channels.json",
            "channel_id=x&use_sessions=0",
            Ok(Op::CreateChannel {
                format: Json,
                channel_id: s("x"),
                use_sessions: true,
                max_messages: None,
            }),
        ),
        (
            "POST",
            "/channels.json",
            "channel_id=x&use_sessions=",
            Ok(Op::CreateChannel {
                format: Json,
                channel_id: s("x"),
                use_sessions: false,
                max_messages: None,
            }),
        ),
        (
            "POST",
            "/channels.json",
            "channel_id=m&max_messages=+2+",
            Ok(Op::CreateChannel {
                format: Json,
                channel_id: s("m"),
                use_sessions: false,
                max_messages: Some(2),
            }),
        ),
        (
            "POST",
            "/channels.json",
            "channel_id=m&max_messages=0",
            err(Json, ErrorKind::InvalidMaxMessages),
        ),
        (
            "POST",
            "/channels.json",
            "channel_id=m&max_messages=2.0",
            err(Json, ErrorKind::InvalidMaxMessages),
        ),
        (
            "POST",
            "/channels.json",
            "x=1",
            err(Json, ErrorKind::MissingChannelId),
        ),
        (
            "POST",
            "/channels/.jsonp",
            "x=1",
            err(Jsonp, ErrorKind::MissingChannelId),
        ),
        (
            "POST",
            "/channels/chan.json",
            "content=test",
            Ok(Op::Publish {
                format: Json,
                channel_id: s("chan"),
                content: Some(s("test")),
            }),
        ),
        (
            "POST",
            "/channels/chan.json?content=q",
            "content=x",
            Ok(Op::Publish {
                format: Json,
                channel_id: s("chan"),
                content: Some(s("x")),
            }),
        ),
        (
            "POST",
            "/channels/chan.json",
            "x=1",
            Ok(Op::Publish {
                format: Json,
                channel_id: s("chan"),
                content: None,
            }),
        ),
        (
            "POST",
            "/channels/chan.json",
            "content=a&content=b",
            Err(Reject::ProcessingFailed),
        ),
        (
            "POST",
            "/channels/chan.json",
            "content=%FF",
            Err(Reject::ProcessingFailed),
        ),
        (
            "POST",
            "/clients.json",
            "client_id=cid",
            Ok(Op::RegisterClient {
                format: Json,
                client_id: s("cid"),
            }),
        ),
        (
            "POST",
            "/clients.jsonp",
            "x=1",
            err(Jsonp, ErrorKind::MissingClientIdRegister),
        ),
        (
            "POST",
            "/clientsx",
            "x=1",
            err(Json, ErrorKind::UnknownFormat),
        ),
        (
            "POST",
            "/status.json",
            "",
            err(Json, ErrorKind::MissingPrefix),
        ),
        (
            "GET",
            "/channels/chan.json",
            "",
            Ok(Op::Subscribe {
                format: Json,
                channels: vec![s("chan")],
                since: 0,
                client_id: None,
            }),
        ),
        (
            "GET",
            "/channels/chan-sess.json?client_id=nonexistent",
            "",
            Ok(Op::Subscribe {
                format: Json,
                channels: vec![s("chan-sess")],
                since: 0,
                client_id: Some(s("nonexistent")),
            }),
        ),
        // client/simple-comet.js + client/index.html
        (
            "GET",
            "/channels/chan%7Ctest.jsonp?since=0&t=1289160231000.0",
            "",
            Ok(Op::Subscribe {
                format: Jsonp,
                channels: vec![s("chan"), s("test")],
                since: 0,
                client_id: None,
            }),
        ),
        (
            "GET",
            "/channels/chan%7Ctest.jsonp?since=128916015846785&t=1289160231000.1&client_id=c%201",
            "",
            Ok(Op::Subscribe {
                format: Jsonp,
                channels: vec![s("chan"), s("test")],
                since: 128916015846785,
                client_id: Some(s("c 1")),
            }),
        ),
        (
            "GET",
            "/channels/a||b.json?since=abc",
            "",
            Ok(Op::Subscribe {
                format: Json,
                channels: vec![s("a"), s(""), s("b")],
                since: 0,
                client_id: None,
            }),
        ),
        (
            "GET",
            "/channels/a.json?since=-5",
            "",
            Ok(Op::Subscribe {
                format: Json,
                channels: vec![s("a")],
                since: -5,
                client_id: None,
            }),
        ),
        (
            "GET",
            "/channels/a.json?since=9;client_id=zz",
            "",
            Ok(Op::Subscribe {
                format: Json,
                channels: vec![s("a")],
                since: 9,
                client_id: Some(s("zz")),
            }),
        ),
        (
            "GET",
            "/channels/a.json?client_id&since=1_0",
            "",
            Ok(Op::Subscribe {
                format: Json,
                channels: vec![s("a")],
                since: 10,
                client_id: None,
            }),
        ),
        (
            "GET",
            "/channels/a.json?client_id=",
            "",
            err(Json, ErrorKind::MissingClientIdRead),
        ),
        (
            "GET",
            "/channels/a.json?client_id=a&client_id=b",
            "",
            Err(Reject::ProcessingFailed),
        ),
        (
            "GET",
            "/channels.json",
            "",
            err(Json, ErrorKind::NoChannels),
        ),
        (
            "GET",
            "/channels/.jsonp",
            "",
            err(Jsonp, ErrorKind::NoChannels),
        ),
        (
            "GET",
            "/channels/chan.xml",
            "",
            err(Json, ErrorKind::UnknownFormat),
        ),
        ("GET", "/foo.json", "", err(Json, ErrorKind::MissingPrefix)),
        ("GET", "/channelsX.json", "", Err(Reject::ProcessingFailed)),
        ("GET", "/status.json", "", Ok(Op::Status { format: Json })),
        ("GET", "/status", "", err(Json, ErrorKind::UnknownFormat)),
        (
            "HEAD",
            "/channels/a.json",
            "",
            Ok(Op::Subscribe {
                format: Json,
                channels: vec![s("a")],
                since: 0,
                client_id: None,
            }),
        ),
        (
            "DELETE",
            "/channels/chan.json",
            "",
            Ok(Op::Delete {
                format: Json,
                channel_id: Some(s("chan")),
            }),
        ),
        (
            "DELETE",
            "/channels.json",
            "",
            Ok(Op::Delete {
                format: Json,
                channel_id: None,
            }),
        ),
        ("DELETE", "/x", "", err(Json, ErrorKind::MissingPrefix)),
        (
            "PUT",
            "/channels/chan.json",
            "content=x",
            Err(Reject::NotImplemented),
        ),
    ];
    for (method, target, body, want) in cases {
        assert_eq!(op(method, target, body), want, "{method} {target} {body}");
    }
}

#[test]
fn status_disabled_falls_through_to_channels() {
    let r = parse(
        &Request {
            method: "GET",
            path: b"/status.json",
            query: &[],
            form: &[],
        },
        false,
    );
    assert_eq!(r, Err(Reject::Protocol(Json, ErrorKind::MissingPrefix)));
}

fn body(r: &Reply) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

const ST: Style = Style {
    quote_json: false,
    honor_cb: false,
};

#[test]
fn encode_table() {
    // Bodies captured from the original (Twisted 26.10, Python 3.11) on 127.0.0.1.
    let cases: Vec<(Reply, &str)> = vec![
        (
            encode_channel_created(Json, "chan", ST, None),
            r#"{"channel_id": "chan", "return_code": 1, "error_message": ""}"#,
        ),
        (
            encode_error(Json, &ErrorKind::ChannelExists, ST, None),
            r#"{"return_code": -2, "error_message": "Channel already exists"}"#,
        ),
        (
            encode_published(Json, 179538350741605, ST, None),
            r#"{"message_id": 179538350741605, "return_code": 1, "error_message": ""}"#,
        ),
        (
            encode_client_registered(Json, "cid", ST, None),
            r#"{"client_id": "cid", "return_code": 1, "error_message": ""}"#,
        ),
        (
            encode_error(Jsonp, &ErrorKind::MissingClientIdRegister, ST, None),
            r#"_JSONP_comet_cb({"return_code": -1, "error_message": "Missing client id"});"#,
        ),
        (
            encode_error(Json, &ErrorKind::MissingPrefix, ST, None),
            r#"{"return_code": -1, "error_message": "Missing '/channels' prefix"}"#,
        ),
        (
            encode_error(Json, &ErrorKind::UnregisteredClient, ST, None),
            r#"{"return_code": -3, "error_message": "Unregistered client_id"}"#,
        ),
        (
            encode_deleted(Json, Some("nope"), false, ST, None),
            r#"{"channel_id": "nope", "removed": false, "return_code": 1, "error_message": ""}"#,
        ),
        (
            encode_deleted(Json, None, false, ST, None),
            r#"{"channel_id": null, "removed": false, "return_code": 1, "error_message": ""}"#,
        ),
        (
            encode_deleted(Jsonp, Some("m"), true, ST, None),
            r#"_JSONP_comet_cb({"channel_id": "m", "removed": true, "return_code": 2, "error_message": ""});"#,
        ),
        (
            encode_status(Json, &[], &[], 0, ST, None),
            r#"{"status": {"channels": [], "clients": [], "held_connections_count": 0}, "return_code": 1, "error_message": ""}"#,
        ),
        (
            encode_status(Json, &["chan", "sess"], &["cid"], 3, ST, None),
            r#"{"status": {"channels": ["chan", "sess"], "clients": ["cid"], "held_connections_count": 3}, "return_code": 1, "error_message": ""}"#,
        ),
        (
            encode_channel_created(
                Json,
                "x",
                Style {
                    quote_json: true,
                    honor_cb: false,
                },
                None,
            ),
            r#"/*-secure- {"channel_id": "x", "return_code": 1, "error_message": ""} */"#,
        ),
        // `cb` is ignored by the original; honoured only on request.
        (
            encode_published(Jsonp, 1, ST, Some("_JSONP_x")),
            r#"_JSONP_comet_cb({"message_id": 1, "return_code": 1, "error_message": ""});"#,
        ),
        (
            encode_published(
                Jsonp,
                1,
                Style {
                    quote_json: false,
                    honor_cb: true,
                },
                Some("_JSONP_x"),
            ),
            r#"_JSONP_x({"message_id": 1, "return_code": 1, "error_message": ""});"#,
        ),
        (
            encode_published(
                Jsonp,
                1,
                Style {
                    quote_json: false,
                    honor_cb: true,
                },
                Some("cb"),
            ),
            "/* incomplete JSONP callback name */",
        ),
        (
            encode_published(
                Jsonp,
                1,
                Style {
                    quote_json: false,
                    honor_cb: true,
                },
                Some("x;_JSONP_"),
            ),
            "/* invalid JSONP callback name */",
        ),
    ];
    for (reply, want) in cases {
        assert_eq!(reply.status, 200);
        assert_eq!(body(&reply), want);
    }
}

#[test]
fn messages_immediate_matches_capture() {
    let m = [Message {
        id: 179538350741605,
        ts: 1795383515,
        content: s("test"),
    }];
    let r = encode_messages(
        Json,
        &[("chan", &m), ("sess", &[])],
        5,
        179538350741605,
        Delivery::Immediate,
        1795383515,
        ST,
        None,
    );
    assert_eq!(
        body(&r),
        r#"{"messages": {"chan": [{"id": 179538350741605, "ts": 1795383515, "content": "test"}], "sess": []}, "since": 5, "last_id": 179538350741605, "return_code": 1, "error_message": ""}"#
    );
    assert_eq!(r.headers[0].0, "Cache-Control");
    assert_eq!(r.headers[0].1, "private, must-revalidate, proxy-revalidate, max-age=1, s-max-age=1, stale-while-revalidate=1, stale-if-error=86400");
    assert_eq!(
        r.headers[1],
        ("Expires", s("Sun, 22 Nov 2026 21:38:36 GMT"))
    );
    assert_eq!(r.headers[2], ("Content-Type", s("application/json")));
}

#[test]
fn messages_woken_escapes_like_python() {
    let m = [Message {
        id: 179538350741606,
        ts: 1795383521,
        content: s("h\u{e9}llo \u{1f600}\"\\</"),
    }];
    let r = encode_messages(
        Jsonp,
        &[("chan", &m)],
        179538350741605,
        179538350741606,
        Delivery::Woken,
        1795383521,
        ST,
        None,
    );
    assert_eq!(
        body(&r),
        r#"_JSONP_comet_cb({"messages": {"chan": [{"id": 179538350741606, "ts": 1795383521, "content": "h\u00e9llo \ud83d\ude00\"\\</"}]}, "since": 179538350741605, "last_id": 179538350741606, "return_code": 1, "error_message": ""});"#
    );
    assert_eq!(r.headers[0], ("Content-Type", s("application/javascript")));
    assert_eq!(
        r.headers[2],
        ("Expires", s("Sun, 22 Nov 2026 21:38:42 GMT"))
    );
}

#[test]
fn py_json_control_and_del() {
    let mut o = String::new();
    py_json_str(&mut o, "\u{1}\u{7f}\n\t\u{8}\u{c}\r");
    assert_eq!(o, r#""\u0001\u007f\n\t\b\f\r""#);
}

#[test]
fn errors_pages() {
    assert_eq!(encode_processing_failed().body.len(), 95);
    let r = encode_not_implemented("PUT");
    assert_eq!((r.status, r.body.len()), (501, 146));
}

#[test]
fn py_int_table() {
    let cases: &[(&str, Option<i64>)] = &[
        ("0", Some(0)),
        (" 12 ", Some(12)),
        ("+3", Some(3)),
        ("-5", Some(-5)),
        ("1_000", Some(1000)),
        ("1__0", None),
        ("_1", None),
        ("abc", None),
        ("", None),
        ("2.0", None),
        ("99999999999999999999999", Some(i64::MAX)),
    ];
    for (input, want) in cases {
        assert_eq!(py_int(input.as_bytes()), *want, "{input}");
    }
}

#[test]
fn clamp_and_dates() {
    assert_eq!(
        clamp_since(999999999999999999, 179538350741605),
        179538350741605
    );
    assert_eq!(clamp_since(-5, 7), -5);
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(initial_message_id(1795383507.41604), 179538350741604);
}

#[test]
fn form_applies_table() {
    assert!(form_applies(
        "POST",
        Some(b"application/x-www-form-urlencoded; charset=UTF-8"),
        3
    ));
    assert!(!form_applies("POST", Some(b"text/plain"), 3));
    assert!(!form_applies(
        "GET",
        Some(b"application/x-www-form-urlencoded"),
        3
    ));
    assert!(!form_applies(
        "POST",
        Some(b"application/x-www-form-urlencoded"),
        0
    ));
}

#[test]
fn registrations_round_trip_and_strangers_are_refused() {
    let reg = |use_sessions, max_messages| Registration {
        use_sessions,
        max_messages,
    };
    for r in [reg(false, 0), reg(true, 100), reg(false, u64::MAX)] {
        assert_eq!(Registration::decode(&r.encode()), Some(r));
    }
    assert_eq!(
        reg(true, 258).encode(),
        [1, 2, 1, 0, 0, 0, 0, 0, 0],
        "the layout kept on disk"
    );
    for bad in [&[][..], &[1], &[2, 0, 0, 0, 0, 0, 0, 0, 0], &[0; 10]] {
        assert_eq!(Registration::decode(bad), None, "{bad:?}");
    }
}
