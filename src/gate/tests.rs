use super::*;

const NOW: u64 = 1_800_000_000;

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!("Basic {}", base64::encode(pair.as_bytes()))
}

fn open_gate() -> Gate {
    Gate::new(None, None, 8, 4)
}

fn token_gate() -> (Gate, JwtKey) {
    (
        Gate::new(None, Some(JwtKey::new(b"k")), 8, 4),
        JwtKey::new(b"k"),
    )
}

fn identify(
    gate: &Gate,
    authorization: Option<&str>,
    token: Option<&str>,
) -> Result<Identity, Refusal> {
    gate.identify(
        Credentials {
            authorization,
            token,
        },
        NOW,
    )
}

#[test]
fn basic_credentials() {
    let cases: &[(&str, Result<Option<&str>, &str>)] = &[
        ("Basic ZHVnc29uZzpzZWNyZXQ=", Ok(Some("dugsong"))),
        ("basic ZHVnc29uZzpzZWNyZXQ=", Ok(Some("dugsong"))),
        ("Basic OnB3", Ok(None)),
        ("Bearer abc", Ok(None)),
        ("Basic !!!", Err("bad Basic credentials")),
        // "nocolon": the original went on without `From`.
        (
            "Basic bm9jb2xvbg==",
            Err("bad Basic credentials: no ':' after the user name"),
        ),
        ("Basic YQpiOmM=", Err("bad Basic user name")),
    ];
    for (header, want) in cases {
        let got = identify(&open_gate(), Some(header), None);
        let got = got
            .map(|who| who.sender().map(String::from))
            .map_err(|r| r.reason);
        let want = want.map(|o| o.map(String::from)).map_err(Cow::from);
        assert_eq!(got, want, "{header}");
    }
}

#[test]
fn the_secret_is_required_of_everyone() {
    let gate = Gate::new(Some("s3".into()), None, 8, 4);
    let cases = [
        (None, 401),
        (Some(basic("a", "nope")), 401),
        (Some(basic("a", "")), 401),
        (Some("Bearer s3".to_string()), 401),
        (Some(basic("a", "s3")), 0),
    ];
    for (header, want) in cases {
        let got = identify(&gate, header.as_deref(), None).map_or_else(|r| r.status, |_| 0);
        assert_eq!(got, want, "{header:?}");
    }
}

#[test]
fn grants_cover_every_channel_an_operation_touches() {
    let (gate, key) = token_gate();
    let token =
        key.sign(r#"{"sub":"al","subscribe":["news/*","!news/secret"],"publish":["chat"]}"#);
    let who = identify(&gate, None, Some(&token)).unwrap();
    assert_eq!(who.sender(), Some("al"));
    let subscribe = |name: &str, subtree: bool| {
        gate.admit_subscribe(&who, [(name, subtree)], 0)
            .map(|_| 0)
            .unwrap_or_else(|r| r.status)
    };
    let cases = [
        ("news/today", false, 0),
        ("news/secret", false, 403),
        ("news/", true, 403),
        ("", true, 403),
        ("news/sport/", true, 0),
        ("chat", false, 403),
    ];
    for (name, subtree, want) in cases {
        assert_eq!(subscribe(name, subtree), want, "{name} {subtree}");
    }
    let publish = |channel: &str| {
        let draft = Draft {
            channel,
            content_type: "t",
            ..Draft::default()
        };
        gate.admit_publish(&who, draft)
            .map(|_| 0)
            .unwrap_or_else(|r| r.status)
    };
    assert_eq!((publish("chat"), publish("news/today")), (0, 403));
    assert_eq!(
        gate.admit_delete(&who, "news/today", None)
            .unwrap_err()
            .status,
        403
    );
    assert_eq!(gate.admit_forget(&who, "chat", None).map(|_| 0), Ok(0));
}

#[test]
fn without_a_valid_token_nothing_on_a_channel_is_admitted() {
    let (gate, _) = token_gate();
    let other = JwtKey::new(b"other").sign(r#"{"subscribe":["*"],"publish":["*"]}"#);
    for token in [None, Some(other.as_str()), Some("x.y.z")] {
        let who = identify(&gate, None, token).expect("identity is kept for static files");
        let refusal = gate.admit_subscribe(&who, [("a", false)], 0).unwrap_err();
        assert_eq!(
            (refusal.status, refusal.challenge),
            (401, Some(BEARER_CHALLENGE))
        );
        let draft = Draft {
            channel: "a",
            ..Draft::default()
        };
        assert_eq!(gate.admit_publish(&who, draft).unwrap_err().status, 401);
    }
}

#[test]
fn values_that_become_header_lines_are_clean() {
    let gate = open_gate();
    let who = identify(&gate, None, None).unwrap();
    let publish = |draft: Draft| {
        gate.admit_publish(&who, draft)
            .map(|_| 0)
            .unwrap_or_else(|r| r.status)
    };
    let ok = Draft {
        channel: "c",
        content_type: "text/plain",
        ..Draft::default()
    };
    assert_eq!(publish(ok.clone()), 0);
    for bad in ["text/plain\nFrom: x", "a\rb", "a\0"] {
        assert_eq!(
            publish(Draft {
                content_type: bad,
                ..ok.clone()
            }),
            400,
            "{bad:?}"
        );
        assert_eq!(
            publish(Draft {
                event: Some(bad),
                ..ok.clone()
            }),
            400,
            "{bad:?}"
        );
        assert_eq!(
            publish(Draft {
                key: Some(bad),
                ..ok.clone()
            }),
            400,
            "{bad:?}"
        );
        assert_eq!(
            publish(Draft {
                lines: vec![bad.as_bytes()],
                ..ok.clone()
            }),
            400,
            "{bad:?}"
        );
        assert_eq!(
            publish(Draft {
                channel: bad,
                ..ok.clone()
            }),
            400,
            "{bad:?}"
        );
    }
    assert_eq!(
        publish(Draft {
            event: Some(""),
            ..ok.clone()
        }),
        400
    );
    let (token_gate, key) = token_gate();
    let forged = key.sign(r#"{"sub":"x\r\nFrom: admin","publish":["*"]}"#);
    assert_eq!(
        identify(&token_gate, None, Some(&forged))
            .unwrap_err()
            .status,
        400
    );
    let remote = gate.admit_remote(1, "c", "text/plain\r\nX: y", None, None, Rc::from(&b""[..]));
    assert_eq!(remote.unwrap_err().status, 400);
}

#[test]
fn limits_bound_what_one_request_may_name() {
    let gate = open_gate();
    let who = identify(&gate, None, None).unwrap();
    let names: Vec<String> = (0..9).map(|i| format!("c{i}")).collect();
    let eight = names[..8].iter().map(|n| (n.as_str(), false));
    assert_eq!(gate.admit_subscribe(&who, eight, 0).unwrap().len(), 8);
    let nine = names.iter().map(|n| (n.as_str(), false));
    let refusal = gate.admit_subscribe(&who, nine, 0).unwrap_err();
    assert_eq!(refusal.limited, Some(Limited::Subscriptions));
    let held = gate.admit_subscribe(&who, [("x", false)], 8).unwrap_err();
    assert_eq!(held.limited, Some(Limited::Subscriptions));
    let draft = Draft {
        content_type: "t",
        ..Draft::default()
    };
    let four: Vec<&str> = names[..4].iter().map(String::as_str).collect();
    let shared = gate.admit_publish_many(&who, &four, draft.clone()).unwrap();
    let bodies: Vec<PublishParts> = shared.into_iter().map(Publish::into_parts).collect();
    assert!(
        bodies.iter().all(|p| Rc::ptr_eq(&p.body, &bodies[0].body)),
        "one body for all"
    );
    let five: Vec<&str> = names[..5].iter().map(String::as_str).collect();
    let refusal = gate.admit_publish_many(&who, &five, draft).unwrap_err();
    assert_eq!(refusal.limited, Some(Limited::PublishChannels));
}
