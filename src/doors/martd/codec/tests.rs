use super::*;

fn op(method: &str, target: &str, body: &str) -> Result<Op, Reject> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = parse_query(query);
    let form = if method == "POST" && path == "/sub" {
        parse_query(body)
    } else {
        Vec::new()
    };
    parse(&Request {
        method,
        path,
        query: &query,
        form: &form,
        body: body.as_bytes(),
    })
}

fn s(x: &str) -> String {
    x.to_string()
}

fn pubop(
    channel: &str,
    size: u64,
    life_ns: i64,
    one2one: bool,
    key: &str,
    body: &str,
) -> Result<Op, Reject> {
    Ok(Op::Publish {
        channel: s(channel),
        size,
        life_ns,
        one2one,
        key: s(key),
        body: body.as_bytes().to_vec(),
    })
}

fn rej(m: &str) -> Result<Op, Reject> {
    Err(Reject(s(m)))
}

#[test]
fn parse_table() {
    let cases: Vec<(&str, &str, &str, Result<Op, Reject>)> = vec![
        // client.js bump(), sub.py, index.html
        ("GET", "/sub?cid=0f8fad5b-d9cb-469f-a165-70867728950e&c1=0", "", Ok(Op::Subscribe { cid: Some(s("0f8fad5b-d9cb-469f-a165-70867728950e")), channels: vec![(s("c1"), 0)] })),
        ("GET", "/sub?cid=x&c1=1795383593861131503&c2=0", "", Ok(Op::Subscribe { cid: Some(s("x")), channels: vec![(s("c1"), 1795383593861131503), (s("c2"), 0)] })),
        ("GET", "/sub?cid=1", "", Ok(Op::Subscribe { cid: Some(s("1")), channels: vec![] })),
        ("GET", "/sub?cid=1&c2=", "", rej("c2 has no etag")),
        ("GET", "/sub?cid=1&c2", "", rej("c2 has no etag")),
        ("GET", "/sub?cid=1&c2=zz", "", rej("invalid etag: expected integer")),
        ("GET", "/sub?c2=+", "", rej("invalid etag: EOF")),
        ("GET", "/sub?c2=1__0", "", rej("invalid etag: strconv.ParseInt: parsing \"1__0\": invalid syntax")),
        ("GET", "/sub?c2=0x10", "", Ok(Op::Subscribe { cid: None, channels: vec![(s("c2"), 16)] })),
        ("POST", "/sub?c1=5", "d=0&cid=q", Ok(Op::Subscribe { cid: Some(s("q")), channels: vec![(s("d"), 0), (s("c1"), 5)] })),
        ("POST", "/sub?d=7", "d=0", Ok(Op::Subscribe { cid: None, channels: vec![(s("d"), 0)] })),
        // Makefile `ping`, publish.py, client.js martd.pub
        ("POST", "/pub?channel=c1", "Sun Nov 22: hello", pubop("c1", 10, DEFAULT_LIFE_NS, false, "", "Sun Nov 22: hello")),
        ("POST", "/pub?channel=c1&size=10&one2one=false&life=3600000000000", "hi", pubop("c1", 10, 3_600_000_000_000, false, "", "hi")),
        ("POST", "/pub?channel=c1&size=5&life=100&one2one=true&key=k", "x", pubop("c1", 5, 100, true, "k", "x")),
        ("GET", "/pub?channel=c1&size=5&life=100&one2one=true&key=k", "", pubop("c1", 5, 100, true, "k", "")),
        ("PUT", "/pub?channel=d&one2one=true", "put-body", pubop("d", 10, DEFAULT_LIFE_NS, true, "", "put-body")),
        ("GET", "/pub?channel=c2&life=1h", "", pubop("c2", 10, 1, false, "", "")),
        ("GET", "/pub", "", rej("channel is required")),
        ("POST", "/pub", "channel=c1", rej("channel is required")),
        ("GET", "/pub?channel=c2&size=abc", "", rej("invalid size: expected integer")),
        ("GET", "/pub?channel=c2&size=-1", "", rej("invalid size: expected integer")),
        ("GET", "/pub?channel=c2&life=99999999999999999999", "", rej("invalid life: strconv.ParseInt: parsing \"99999999999999999999\": value out of range")),
        ("GET", "/list", "", Ok(Op::List)),
        ("GET", "/client.js", "", Ok(Op::ClientJs)),
        ("GET", "/", "", Ok(Op::Index)),
        ("GET", "/debug/vars", "", Ok(Op::DebugVars)),
        ("GET", "/nothing", "", Ok(Op::NotFound)),
        ("GET", "/pub/", "", Ok(Op::NotFound)),
    ];
    for (method, target, body, want) in cases {
        assert_eq!(op(method, target, body), want, "{method} {target} {body}");
    }
}

#[test]
fn sscan_table() {
    // Checked against Go 1.19 fmt.Sscan.
    let ints: &[(&str, Result<i64, &str>)] = &[
        ("0", Ok(0)),
        (" 12 ", Ok(12)),
        ("+3", Ok(3)),
        ("-5", Ok(-5)),
        ("1_000", Ok(1000)),
        (
            "1__0",
            Err("strconv.ParseInt: parsing \"1__0\": invalid syntax"),
        ),
        (
            "_1",
            Err("strconv.ParseInt: parsing \"_1\": invalid syntax"),
        ),
        ("abc", Err("expected integer")),
        ("", Err("EOF")),
        (" ", Err("EOF")),
        ("-", Err("EOF")),
        ("0x10", Ok(16)),
        (
            "0x",
            Err("strconv.ParseInt: parsing \"0x\": invalid syntax"),
        ),
        ("0b101", Ok(5)),
        ("0o17", Ok(15)),
        ("017", Ok(15)),
        ("09", Ok(0)),
        ("5abc", Ok(5)),
        (
            "99999999999999999999",
            Err("strconv.ParseInt: parsing \"99999999999999999999\": value out of range"),
        ),
        ("-9223372036854775808", Ok(i64::MIN)),
        (
            "9223372036854775808",
            Err("strconv.ParseInt: parsing \"9223372036854775808\": value out of range"),
        ),
        ("1h", Ok(1)),
        ("0x_1", Ok(1)),
        ("2.5", Ok(2)),
    ];
    for (input, want) in ints {
        assert_eq!(sscan_int(input), want.map_err(s), "int {input:?}");
    }
    let uints: &[(&str, Result<u64, &str>)] = &[
        ("+3", Err("expected integer")),
        ("-5", Err("expected integer")),
        ("-", Err("expected integer")),
        ("9223372036854775808", Ok(9223372036854775808)),
        (
            "1__0",
            Err("strconv.ParseUint: parsing \"1__0\": invalid syntax"),
        ),
        (
            "99999999999999999999",
            Err("strconv.ParseUint: parsing \"99999999999999999999\": value out of range"),
        ),
        ("0", Ok(0)),
        ("10", Ok(10)),
    ];
    for (input, want) in uints {
        assert_eq!(sscan_uint(input), want.map_err(s), "uint {input:?}");
    }
}

#[test]
fn parse_query_like_go() {
    let got = parse_query("cid=x&c1&a=%zz&b=1;2&+c+=d+e&=5&&x=%41");
    let want: Vec<(String, String)> = vec![
        (s("cid"), s("x")),
        (s("c1"), s("")),
        (s(" c "), s("d e")),
        (s(""), s("5")),
        (s("x"), s("A")),
    ];
    assert_eq!(got, want);
}

fn body(r: &Reply) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

#[test]
fn encode_table() {
    // Bodies captured from the original (Go 1.19 build of src/martd) on 127.0.0.1.
    let cases: Vec<(Reply, u16, &str)> = vec![
        (encode_published(0), 200, "{\n     \"etag\": \"0\"\n }"),
        (encode_published(1795383593861131503), 200, "{\n     \"etag\": \"1795383593861131503\"\n }"),
        (encode_reject(&Reject(s("channel is required"))), 400, "{\"error\":\"channel is required\"}\n"),
        (encode_reject(&Reject(s("invalid life: strconv.ParseInt: parsing \"99999999999999999999\": value out of range"))), 400,
            "{\"error\":\"invalid life: strconv.ParseInt: parsing \\\"99999999999999999999\\\": value out of range\"}\n"),
        (encode_channels(&[ChannelData { name: "c1", etag: 1795383593861131503, payload: vec![b"hello"] }]), 200,
            r#"{"channels":{"c1":{"etag":"1795383593861131503","payload":["hello"]}}}"#),
        (encode_channels(&[
            ChannelData { name: "c2", etag: 1795383608417240668, payload: vec![b"x", b"m1", b"m2"] },
            ChannelData { name: "c1", etag: 1795383593861131503, payload: vec![b"hello"] },
        ]), 200, r#"{"channels":{"c1":{"etag":"1795383593861131503","payload":["hello"]},"c2":{"etag":"1795383608417240668","payload":["x","m1","m2"]}}}"#),
        (encode_channels(&[ChannelData { name: "d", etag: 1795383622096160456, payload: vec![b"b", b"c", "d\"é<".as_bytes()] }]), 200,
            "{\"channels\":{\"d\":{\"etag\":\"1795383622096160456\",\"payload\":[\"b\",\"c\",\"d\\\"é\\u003c\"]}}}"),
        (encode_list(), 200, "ok\n"),
        (encode_not_found(), 404, "404 page not found\n"),
    ];
    for (reply, status, want) in cases {
        assert_eq!(reply.status, status);
        assert_eq!(body(&reply), want);
    }
    assert_eq!(encode_published(0).body.len(), 21);
    assert_eq!(
        encode_reject(&Reject(s("x"))).headers[2],
        ("X-Content-Type-Options", s("nosniff"))
    );
}

#[test]
fn go_json_escapes() {
    let mut o = String::new();
    go_json_str(
        &mut o,
        b"a\x00\x08\x0c\n\x7f<>&\xe2\x80\xa8\xe2\x82\"\\\xc3\xa9",
    );
    assert_eq!(
        o,
        "\"a\\u0000\\u0008\\u000c\\n\x7f\\u003c\\u003e\\u0026\\u2028\\ufffd\\ufffd\\\"\\\\é\""
    );
}

#[test]
fn has_new_table() {
    let kept = [10, 20, 30];
    let cases: &[(&[i64], i64, Option<usize>)] = &[
        (&kept, 0, Some(0)), // first subscribe: everything kept
        (&kept, 9, Some(0)), // older than the oldest: everything kept
        (&kept, 10, Some(1)),
        (&kept, 20, Some(2)),
        (&kept, 30, None), // up to date: hold
        (&kept, 25, None), // unknown etag inside the window: hold (lost messages)
        (&kept, 99, None),
        (&[], 0, None), // channel never published: hold
        (&[10], 10, None),
    ];
    for (created, etag, want) in cases {
        assert_eq!(has_new(created, *etag), *want, "{created:?} {etag}");
    }
}

#[test]
fn expiry_and_client_url() {
    assert!(expired(100, 1, 101));
    assert!(!expired(100, 2, 101));
    assert_eq!(
        client_sub_target("u", &[("c1", "0"), ("c2", "17")]),
        "/sub?cid=u&c1=0&c2=17"
    );
}
