//! Which resource a request path names, and which methods it takes. A pure function of the
//! (percent-decoded) path, so every rule is a line in a table test.

use crate::http::request::Method;

pub const MSGBUS_PREFIX: &str = "/msgbus/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `/msgbus/NAME`: publish to or subscribe to one channel.
    Channel(String),
    /// `/msgbus/` (every channel) or `/msgbus/PREFIX/` (every channel under PREFIX/):
    /// subscribe only; publishing to it publishes to the channel named by the path ("" or
    /// "PREFIX/"), which its subtree subscribers receive once.
    Subtree(String),
    /// `/status.json`: counters.
    Status,
    /// Anything else, from the document root if there is one.
    Static,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// A channel name with a control character.
    BadChannelName,
}

/// Maps a decoded path to a resource.
pub fn route(path: &str) -> Result<Resource, RouteError> {
    if let Some(name) = path.strip_prefix(MSGBUS_PREFIX) {
        if name.chars().any(char::is_control) {
            return Err(RouteError::BadChannelName);
        }
        return Ok(if name.is_empty() || name.ends_with('/') {
            Resource::Subtree(name.to_string())
        } else {
            Resource::Channel(name.to_string())
        });
    }
    Ok(match path {
        "/status.json" => Resource::Status,
        _ => Resource::Static,
    })
}

impl Resource {
    /// The methods this resource answers, for `Allow` on a 405.
    pub fn allowed(&self) -> &'static [Method] {
        match self {
            Resource::Channel(_) | Resource::Subtree(_) => {
                &[Method::Get, Method::Head, Method::Post]
            }
            Resource::Status | Resource::Static => &[Method::Get, Method::Head],
        }
    }

    pub fn allow_header(&self) -> String {
        let names: Vec<&str> = self.allowed().iter().map(|m| m.as_str()).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases: &[(&str, Result<Resource, RouteError>)] = &[
            ("/msgbus/foo", Ok(Resource::Channel("foo".into()))),
            ("/msgbus/a b/c", Ok(Resource::Channel("a b/c".into()))),
            ("/msgbus/", Ok(Resource::Subtree("".into()))),
            ("/msgbus/sensors/", Ok(Resource::Subtree("sensors/".into()))),
            ("/msgbus", Ok(Resource::Static)),
            ("/msgbus/x\ny", Err(RouteError::BadChannelName)),
            ("/status.json", Ok(Resource::Status)),
            ("/", Ok(Resource::Static)),
            ("/index.html", Ok(Resource::Static)),
        ];
        for (path, want) in cases {
            assert_eq!(&route(path), want, "{path}");
        }
    }

    #[test]
    fn allow_headers() {
        assert_eq!(
            Resource::Channel("x".into()).allow_header(),
            "GET, HEAD, POST"
        );
        assert_eq!(Resource::Static.allow_header(), "GET, HEAD");
    }
}
