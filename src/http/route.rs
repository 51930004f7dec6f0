//! Which resource a request path names, and which methods it takes. A pure function of the
//! (percent-decoded) path, so every rule is a line in a table test.

use std::collections::HashSet;

use crate::http::request::Method;

pub const MSGBUS_PREFIX: &str = "/msgbus/";
/// The channel pages, apart from every door's paths (Simple-Comet owns `/channels...` and
/// `/status...` when open) and from `/msgbus/` channel names.
pub const CHANNEL_LIST: &str = "/msgbus-status/channels.json";
pub const CHANNEL_PREFIX: &str = "/msgbus-status/channels/";

/// One name in a `/msgbus/` path: a channel, or with `subtree` every channel under a prefix
/// ("" for all of them, else a name ending in '/').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub subtree: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `/msgbus/NAME[,NAME...]`: subscribe to each; publish to or delete one channel. A name
    /// ending in '/' (or the empty path `/msgbus/`) is a subtree; publishing to it publishes to
    /// the channel named by the path ("" or "PREFIX/"), which its subtree subscribers get once.
    Topics(Vec<Topic>),
    /// `/status.json`: counters.
    Status,
    /// `/metrics`: the same counters in Prometheus text format.
    Metrics,
    /// `/msgbus-status/channels.json`: a page of channels (`?after=NAME&limit=N`).
    ChannelList,
    /// `/msgbus-status/channels/NAME.json`: one channel.
    ChannelInfo(String),
    /// `/msgbus.js`: the browser client, built in.
    ClientJs,
    /// `/msgbus.mjs`: the same client as an ES module, built in.
    ClientModule,
    /// Anything else, from the document root if there is one.
    Static,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// A channel name with a control character, or an empty or repeated name in a list.
    BadChannelName,
    /// More names than `max_names` (`--max-subscriptions`).
    TooManyChannels,
}

/// Maps a decoded path to a resource. A list of more than `max_names` names is refused
/// before any name is looked at, so a long head costs one scan for commas, and the duplicate
/// check is one hash lookup per name.
/// Up to this many names in one path, repeats are found by comparing each with the others.
const FEW_NAMES: usize = 8;

pub fn route(path: &str, max_names: usize) -> Result<Resource, RouteError> {
    if let Some(names) = path.strip_prefix(MSGBUS_PREFIX) {
        if names.is_empty() {
            return Ok(Resource::Topics(vec![Topic {
                name: String::new(),
                subtree: true,
            }]));
        }
        let count = memchr::memchr_iter(b',', names.as_bytes()).count() + 1;
        if count > max_names {
            return Err(RouteError::TooManyChannels);
        }
        if names.chars().any(char::is_control) {
            return Err(RouteError::BadChannelName);
        }
        let mut topics: Vec<Topic> = Vec::with_capacity(count);
        // Repeated names: found by comparison while there are few (the usual single name
        // needs no set, so no allocation), by a set past that.
        let mut seen = (count > FEW_NAMES).then(HashSet::new);
        for name in names.split(',') {
            let repeated = match seen.as_mut() {
                Some(seen) => !seen.insert(name),
                None => topics.iter().any(|topic| topic.name == name),
            };
            if name.is_empty() || repeated {
                return Err(RouteError::BadChannelName);
            }
            topics.push(Topic {
                name: name.to_string(),
                subtree: name.ends_with('/'),
            });
        }
        return Ok(Resource::Topics(topics));
    }
    if let Some(rest) = path.strip_prefix(CHANNEL_PREFIX) {
        return match rest.strip_suffix(".json") {
            Some(name) if !name.is_empty() && !name.chars().any(char::is_control) => {
                Ok(Resource::ChannelInfo(name.to_string()))
            }
            Some(_) => Err(RouteError::BadChannelName),
            None => Ok(Resource::Static),
        };
    }
    Ok(match path {
        "/status.json" => Resource::Status,
        CHANNEL_LIST => Resource::ChannelList,
        "/metrics" => Resource::Metrics,
        "/msgbus.js" => Resource::ClientJs,
        "/msgbus.mjs" => Resource::ClientModule,
        _ => Resource::Static,
    })
}

impl Resource {
    /// The methods this resource answers, for `Allow` on a 405.
    pub fn allowed(&self) -> &'static [Method] {
        match self {
            Resource::Topics(_) => &[
                Method::Get,
                Method::Head,
                Method::Post,
                Method::Delete,
                Method::Options,
            ],
            Resource::Status
            | Resource::Metrics
            | Resource::ChannelList
            | Resource::ChannelInfo(_)
            | Resource::ClientJs
            | Resource::ClientModule
            | Resource::Static => &[Method::Get, Method::Head, Method::Options],
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

    fn topics(list: &[(&str, bool)]) -> Result<Resource, RouteError> {
        Ok(Resource::Topics(
            list.iter()
                .map(|(name, subtree)| Topic {
                    name: name.to_string(),
                    subtree: *subtree,
                })
                .collect(),
        ))
    }

    #[test]
    fn routes() {
        let cases: &[(&str, Result<Resource, RouteError>)] = &[
            ("/msgbus/foo", topics(&[("foo", false)])),
            ("/msgbus/a b/c", topics(&[("a b/c", false)])),
            ("/msgbus/", topics(&[("", true)])),
            ("/msgbus/sensors/", topics(&[("sensors/", true)])),
            (
                "/msgbus/a,b,s/",
                topics(&[("a", false), ("b", false), ("s/", true)]),
            ),
            ("/msgbus/a,,b", Err(RouteError::BadChannelName)),
            ("/msgbus/a,a", Err(RouteError::BadChannelName)),
            ("/msgbus/a,", Err(RouteError::BadChannelName)),
            ("/msgbus", Ok(Resource::Static)),
            ("/msgbus/x\ny", Err(RouteError::BadChannelName)),
            ("/status.json", Ok(Resource::Status)),
            ("/metrics", Ok(Resource::Metrics)),
            ("/msgbus-status/channels.json", Ok(Resource::ChannelList)),
            (
                "/msgbus-status/channels/a/b.json",
                Ok(Resource::ChannelInfo("a/b".into())),
            ),
            (
                "/msgbus-status/channels/x.json.json",
                Ok(Resource::ChannelInfo("x.json".into())),
            ),
            (
                "/msgbus-status/channels/.json",
                Err(RouteError::BadChannelName),
            ),
            (
                "/msgbus-status/channels/a\rb.json",
                Err(RouteError::BadChannelName),
            ),
            ("/msgbus-status/channels/a", Ok(Resource::Static)),
            ("/msgbus-status/channels", Ok(Resource::Static)),
            ("/", Ok(Resource::Static)),
            ("/index.html", Ok(Resource::Static)),
        ];
        for (path, want) in cases {
            assert_eq!(&route(path, 64), want, "{path}");
        }
    }

    #[test]
    fn repeats_are_found_with_few_names_and_with_many() {
        for count in [2, FEW_NAMES, FEW_NAMES + 1, 100] {
            let mut names: Vec<String> = (0..count).map(|i| format!("c{i}")).collect();
            let path = format!("/msgbus/{}", names.join(","));
            match route(&path, 1000) {
                Ok(Resource::Topics(topics)) => assert_eq!(topics.len(), count),
                other => panic!("{count}: {other:?}"),
            }
            // The last name repeats the first: compared across the whole list.
            names[count - 1] = "c0".into();
            let path = format!("/msgbus/{}", names.join(","));
            assert_eq!(
                route(&path, 1000),
                Err(RouteError::BadChannelName),
                "{count}"
            );
        }
    }

    #[test]
    fn name_count_is_checked_before_names() {
        assert_eq!(
            route("/msgbus/a,b", 2),
            topics(&[("a", false), ("b", false)])
        );
        assert_eq!(route("/msgbus/a,b,c", 2), Err(RouteError::TooManyChannels));
        // Even when the names are bad: the count is the first thing looked at.
        assert_eq!(route("/msgbus/a,a,a", 2), Err(RouteError::TooManyChannels));
        let many: Vec<String> = (0..5000).map(|i| format!("c{i}")).collect();
        let path = format!("/msgbus/{}", many.join(","));
        assert_eq!(route(&path, 64), Err(RouteError::TooManyChannels));
        match route(&path, 5000) {
            Ok(Resource::Topics(topics)) => assert_eq!(topics.len(), 5000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn allow_headers() {
        assert_eq!(
            route("/msgbus/x", 64).unwrap().allow_header(),
            "GET, HEAD, POST, DELETE, OPTIONS"
        );
        assert_eq!(Resource::Static.allow_header(), "GET, HEAD, OPTIONS");
    }
}
