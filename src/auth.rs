//! Signed tokens (JWT, HS256): who may subscribe to and publish on which channels.
//!
//! A token's claims:
//! - `exp` (seconds since 1970): refused after it; `nbf`: refused before it;
//! - `sub`: shown to subscribers as the sender (`From`) of what the holder publishes, when no
//!   HTTP Basic user is given;
//! - `subscribe` and `publish`: lists of channel patterns (the `?type=` glob syntax: `*`, `?`,
//!   `!` to deny). A missing list, or one with no allowing pattern, grants nothing. A subtree
//!   or all-channels subscription is granted only when the list covers every channel under it.
//!
//! Only HS256 is accepted, whatever the header says otherwise (`alg: none` is the classic hole).

use std::fmt;

use ring::hmac;
use serde_json::Value;

use crate::glob::GlobList;
use crate::http::base64;

/// Tokens longer than this are refused unread.
const MAX_TOKEN: usize = 8 * 1024;

pub struct JwtKey {
    key: hmac::Key,
}

impl JwtKey {
    pub fn new(secret: &[u8]) -> JwtKey {
        JwtKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Signs `claims` (a JSON object) into a token: for tests and for operators' scripts.
    pub fn sign(&self, claims: &str) -> String {
        let header = base64::encode_url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = base64::encode_url(claims.as_bytes());
        let signing_input = format!("{header}.{payload}");
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", base64::encode_url(tag.as_ref()))
    }

    /// Checks the signature and the time claims; `now` is seconds since 1970.
    pub fn verify(&self, token: &str, now: u64) -> Result<Grant, TokenError> {
        if token.len() > MAX_TOKEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value = decode_json(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(TokenError::Algorithm);
        }
        let signature = base64::decode_url(signature.as_bytes()).ok_or(TokenError::Malformed)?;
        let signing_input = &token[..header_len(token)];
        hmac::verify(&self.key, signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;
        let claims: Value = decode_json(payload)?;
        let time = |name: &str| -> Result<Option<u64>, TokenError> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .map(Some)
                    .ok_or(TokenError::Malformed),
            }
        };
        if time("exp")?.is_some_and(|exp| now >= exp) {
            return Err(TokenError::Expired);
        }
        if time("nbf")?.is_some_and(|nbf| now < nbf) {
            return Err(TokenError::NotYetValid);
        }
        let list = |name: &str| -> Result<Option<GlobList>, TokenError> {
            match claims.get(name) {
                None => Ok(None),
                Some(Value::Array(items)) => {
                    let mut patterns = Vec::new();
                    for item in items {
                        patterns.push(item.as_str().ok_or(TokenError::Malformed)?);
                    }
                    Ok(Some(GlobList::parse(&patterns.join(","))))
                }
                Some(_) => Err(TokenError::Malformed),
            }
        };
        Ok(Grant {
            subject: claims.get("sub").and_then(Value::as_str).map(Into::into),
            subscribe: list("subscribe")?,
            publish: list("publish")?,
        })
    }
}

/// The length of `header.payload`, the signed part of a token.
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn decode_json(part: &str) -> Result<Value, TokenError> {
    let bytes = base64::decode_url(part.as_bytes()).ok_or(TokenError::Malformed)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if !value.is_object() {
        return Err(TokenError::Malformed);
    }
    Ok(value)
}

/// What a valid token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub subject: Option<String>,
    subscribe: Option<GlobList>,
    publish: Option<GlobList>,
}

impl Grant {
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.subscribe
            .as_ref()
            .is_some_and(|list| list.allows_anything() && list.matches(topic))
    }

    /// Every channel whose name starts with `prefix`, present and future ("" for all).
    pub fn may_subscribe_under(&self, prefix: &str) -> bool {
        self.subscribe
            .as_ref()
            .is_some_and(|list| list.covers_prefix(prefix))
    }

    pub fn may_publish(&self, channel: &str) -> bool {
        self.publish
            .as_ref()
            .is_some_and(|list| list.allows_anything() && list.matches(channel))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    Algorithm,
    Signature,
    Expired,
    NotYetValid,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::Algorithm => "token algorithm must be HS256",
            TokenError::Signature => "bad token signature",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not valid yet",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn grants_follow_the_claims() {
        let key = JwtKey::new(b"k");
        let token = key.sign(
            r#"{"sub":"alice","exp":1800000100,"subscribe":["news/*","!news/secret"],"publish":["chat"]}"#,
        );
        let grant = key.verify(&token, NOW).unwrap();
        assert_eq!(grant.subject.as_deref(), Some("alice"));
        assert!(grant.may_subscribe("news/today"));
        assert!(!grant.may_subscribe("news/secret"));
        assert!(!grant.may_subscribe("chat"));
        assert!(grant.may_publish("chat"));
        assert!(!grant.may_publish("news/today"));
        assert!(grant.may_subscribe_under("news/public/"));
        assert!(!grant.may_subscribe_under("news/"));
        assert!(!grant.may_subscribe_under(""));
        let nothing = key.verify(&key.sign("{}"), NOW).unwrap();
        assert!(!nothing.may_subscribe("x") && !nothing.may_publish("x"));
        let only_denials = key.verify(&key.sign(r#"{"subscribe":["!x"],"publish":[]}"#), NOW);
        let only_denials = only_denials.unwrap();
        assert!(!only_denials.may_subscribe("y") && !only_denials.may_publish("y"));
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let key = JwtKey::new(b"k");
        let other = JwtKey::new(b"other");
        let none_alg = format!(
            "{}.{}.",
            base64::encode_url(br#"{"alg":"none"}"#),
            base64::encode_url(b"{}")
        );
        let tampered = {
            let token = key.sign(r#"{"publish":["a"]}"#);
            let forged = base64::encode_url(br#"{"publish":["*"]}"#);
            let mut parts: Vec<&str> = token.split('.').collect();
            parts[1] = &forged;
            parts.join(".")
        };
        let cases: Vec<(String, TokenError)> = vec![
            ("".into(), TokenError::Malformed),
            ("a.b".into(), TokenError::Malformed),
            ("a.b.c.d".into(), TokenError::Malformed),
            (none_alg, TokenError::Algorithm),
            (other.sign("{}"), TokenError::Signature),
            (tampered, TokenError::Signature),
            (key.sign(r#"{"exp":1800000000}"#), TokenError::Expired),
            (key.sign(r#"{"nbf":1800000001}"#), TokenError::NotYetValid),
            (key.sign(r#"{"exp":"soon"}"#), TokenError::Malformed),
            (key.sign(r#"{"publish":"a"}"#), TokenError::Malformed),
            (key.sign(r#"[1]"#), TokenError::Malformed),
            ("x".repeat(MAX_TOKEN + 1), TokenError::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(key.verify(&token, NOW).unwrap_err(), want, "{token}");
        }
    }
}
