//! eventsource-broker's browser client, built in: `/es.js` (the ESHQ API, with the broker's
//! origin filled in where the original's template had `$origin$`), `/iframe` and `/iframe.js`
//! (the hidden page that streams a socket and talks to es.js with postMessage), and the same
//! under `/static/` where the original's static directory had them. The scripts are msgbus's
//! own (static/esb/), speaking the original client's message format, so a page that embeds the
//! original's es.js works against this door and ours against the original's iframe.

use std::borrow::Cow;

use crate::conn::{Conn, Ctx, DoorRequest, Next};
use crate::http::request::Method;

const ES_JS: &str = include_str!("../../../static/esb/es.js");
const IFRAME_HTML: &str = include_str!("../../../static/esb/iframe.html");
const IFRAME_JS: &str = include_str!("../../../static/esb/iframe.js");

/// Where es.js's template takes the origin (the original's StringTemplate attribute).
const ORIGIN_SLOT: &str = "$origin$";

/// One of the client's files, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: Cow<'static, [u8]>,
}

/// The client file at `path`, if it is one; `origin` is `--esb-origin` (None: es.js takes the
/// origin it was loaded from).
pub fn asset(path: &str, origin: Option<&str>) -> Option<Asset> {
    let script = "text/javascript; charset=utf-8";
    Some(match path {
        "/es.js" | "/static/eshq.js" => Asset {
            content_type: script,
            body: Cow::Owned(render_es_js(origin).into_bytes()),
        },
        "/iframe" | "/static/iframe.html" => Asset {
            content_type: "text/html; charset=utf-8",
            body: Cow::Borrowed(IFRAME_HTML.as_bytes()),
        },
        "/iframe.js" | "/static/iframe.js" => Asset {
            content_type: script,
            body: Cow::Borrowed(IFRAME_JS.as_bytes()),
        },
        _ => return None,
    })
}

/// A GET or HEAD of one of the client's files: its answer. None: not one of them.
pub fn serve(session: &mut Conn, req: &DoorRequest, ctx: &Ctx) -> Option<Option<Next>> {
    if !matches!(req.request.method, Method::Get | Method::Head) {
        return None;
    }
    let asset = asset(req.raw_path, ctx.cfg.esb_origin.as_deref())?;
    let content_type = [("Content-Type", asset.content_type)];
    Some(session.answer_framed(req.reply, 200, content_type, &asset.body))
}

/// es.js with `origin` in its slot, written as the inside of a JavaScript string (the option
/// is checked to be a plain origin, but a value never becomes code whatever it holds).
fn render_es_js(origin: Option<&str>) -> String {
    let mut escaped = String::new();
    for c in origin.unwrap_or("").chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | ':' | '/' | '-' | '[' | ']' | '_' => {
                escaped.push(c)
            }
            c => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    escaped.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    ES_JS.replacen(ORIGIN_SLOT, &escaped, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(asset: Asset) -> String {
        String::from_utf8(asset.body.into_owned()).unwrap()
    }

    #[test]
    fn the_origin_fills_the_slot_or_leaves_it_to_the_script() {
        let js = text(asset("/es.js", Some("https://push.example.com:8443")).unwrap());
        assert!(js.contains("var configured = \"https://push.example.com:8443\";"));
        assert!(!js.contains(ORIGIN_SLOT));
        let js = text(asset("/static/eshq.js", None).unwrap());
        assert!(js.contains("var configured = \"\";"));
        let js = render_es_js(Some("http://a\";alert(1)//"));
        assert!(js.contains("var configured = \"http://a\\u0022\\u003balert\\u00281\\u0029//\";"));
    }

    #[test]
    fn paths_and_types() {
        for (path, content_type) in [
            ("/es.js", "text/javascript; charset=utf-8"),
            ("/iframe", "text/html; charset=utf-8"),
            ("/iframe.js", "text/javascript; charset=utf-8"),
            ("/static/eshq.js", "text/javascript; charset=utf-8"),
            ("/static/iframe.html", "text/html; charset=utf-8"),
            ("/static/iframe.js", "text/javascript; charset=utf-8"),
        ] {
            assert_eq!(
                asset(path, None).unwrap().content_type,
                content_type,
                "{path}"
            );
        }
        for path in [
            "/",
            "/iframe/",
            "/es.js/x",
            "/static/other.js",
            "/iframe.html",
        ] {
            assert_eq!(asset(path, None), None, "{path}");
        }
    }
}
