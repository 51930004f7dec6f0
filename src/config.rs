//! The server's settings: every default as a named constant, parsed from the command line with
//! lexopt and validated before anything binds a socket.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_ADDRESS: &str = "0.0.0.0";
pub const DEFAULT_PORT: u16 = 8888;
pub const DEFAULT_TLS_PORT: u16 = 8443;
/// Owner and group may connect to the UNIX socket.
pub const DEFAULT_UNIX_MODE: u32 = 0o660;
/// Request heads larger than this are refused with 431.
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;
/// Request bodies (published messages) larger than this are refused with 413.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Bytes a subscriber may have queued before the slow-subscriber policy applies (the original
/// used 1,000,000).
pub const DEFAULT_MAX_QUEUE: usize = 1024 * 1024;
/// SO_SNDBUF a subscriber's socket gets: without a cap Linux autotunes a send buffer that a
/// reader who does not read fills to megabytes, in kernel memory and in copies the loop waits on.
pub const DEFAULT_SOCKET_SEND_BUFFER: usize = 64 * 1024;
/// A request head must arrive whole within this time of its first byte.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive whole within this time of its head.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// An idle keep-alive connection (between requests) is closed after this long.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// A response (not a stream) the client does not read is given up after this long.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Messages a channel keeps for resuming clients (0: live only, as the original).
pub const DEFAULT_HISTORY: usize = 100;
/// The largest history a publisher may ask for with `?size=`.
pub const DEFAULT_MAX_HISTORY: usize = 10_000;
/// How long a retained message lives.
pub const DEFAULT_MESSAGE_LIFETIME: Duration = Duration::from_secs(3600);
/// A channel with no subscribers and no messages is freed after this long.
pub const DEFAULT_CHANNEL_TIMEOUT: Duration = Duration::from_secs(60);
/// SSE comments and WebSocket pings go out this often on an idle stream.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// A long-poll is held this long before it is answered with no messages.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// On SIGTERM, queued output gets this long to go out before the process exits.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Channels one subscription may name.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 64;
/// Channels that may exist at once.
pub const DEFAULT_MAX_CHANNELS: usize = 1_000_000;
/// Bytes all channels' histories may hold together; past it the oldest messages go first.
pub const DEFAULT_MAX_RETAINED_BYTES: usize = 256 * 1024 * 1024;
/// File descriptors kept for listeners, logs and files being served.
pub const RESERVED_FDS: usize = 32;
/// A connection with output queued that the peer takes none of for this long is closed.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Streams one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const DEFAULT_HTTP2_MAX_STREAMS: u32 = 128;
/// The most `--http2-max-streams` may allow: each stream is a session that counts against no
/// connection limit, and a connection's streams are kept in id order (`h2::streams`), so
/// ending one shifts those after it.
pub const MAX_HTTP2_MAX_STREAMS: u32 = 10_000;
/// What a client may send on one HTTP/2 stream before we grant more
/// (`SETTINGS_INITIAL_WINDOW_SIZE`): a request body, or a WebSocket's input.
pub const DEFAULT_HTTP2_WINDOW: u32 = 256 * 1024;
/// The smallest stream window we take: one frame of the default size.
pub const MIN_HTTP2_WINDOW: u32 = 16 * 1024;
/// The HPACK dynamic table a client may make us keep per connection
/// (`SETTINGS_HEADER_TABLE_SIZE`); 4,096 is the protocol's default.
pub const DEFAULT_HTTP2_HPACK_TABLE: u32 = 4096;
/// The largest HPACK table we agree to keep per connection.
pub const MAX_HTTP2_HPACK_TABLE: u32 = 1024 * 1024;

/// With `--fsync batch`, the log is made durable at most this often.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(50);
/// A log segment is closed and a new one begun past this size.
pub const DEFAULT_SEGMENT_SIZE: usize = 64 * 1024 * 1024;

/// When a publish logged under `--data-dir` is acknowledged, and when its subscribers get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After its record is on disk (`fdatasync`): a crash takes back nothing acknowledged and
    /// nothing any subscriber saw.
    Always,
    /// After its record is written (the page cache); `fdatasync` at most every interval. A
    /// machine crash (not a process crash) may take back that interval's messages.
    Batch(Duration),
    /// At once; the operating system writes when it likes. A process crash loses nothing
    /// written, a machine crash may lose what the kernel had not written yet.
    Never,
}

/// What happens to a subscriber whose output queue is over `max_queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowPolicy {
    /// Drop its oldest unsent messages: right for multipart/x-mixed-replace, whose meaning is
    /// "replace what you showed".
    DropOldest,
    /// Disconnect it; a resuming client learns from its last id what it missed.
    Close,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Listeners that speak HTTPS (needs `tls_cert` and `tls_key`).
    pub tls_listen: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A UNIX-domain listener, for running behind a proxy on the same host.
    pub unix: Option<PathBuf>,
    pub unix_mode: u32,
    pub docroot: Option<PathBuf>,
    pub secret: Option<String>,
    pub verbosity: u8,
    /// None: derived from the open-files limit at start-up.
    pub max_connections: Option<usize>,
    pub max_head: usize,
    pub max_body: usize,
    pub max_queue: usize,
    pub slow_policy: SlowPolicy,
    /// SO_SNDBUF for subscribers' sockets (0: the kernel's autotuning); counted in `max_queue`.
    pub socket_send_buffer: usize,
    pub head_timeout: Duration,
    pub body_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub send_timeout: Duration,
    pub history: usize,
    pub max_history: usize,
    pub message_lifetime: Duration,
    pub channel_timeout: Duration,
    pub ping_interval: Duration,
    pub poll_timeout: Duration,
    /// Largest WebSocket message a client may send (default: --max-body).
    pub max_ws_message: Option<usize>,
    /// Origins allowed for CORS and WebSocket handshakes; None: no CORS headers, any origin
    /// may open a WebSocket. `*` allows every origin.
    pub allow_origins: Option<Vec<String>>,
    pub shutdown_timeout: Duration,
    /// Log to this file instead of stderr; reopened on SIGUSR1.
    pub log_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// Switch to this user (and its group) once the listeners are bound.
    pub user: Option<String>,
    /// Channels need a signed token (HS256) made with this key.
    pub jwt_secret: Option<String>,
    /// The same, read from the first line of a file (and re-read on SIGHUP).
    pub jwt_secret_file: Option<PathBuf>,
    /// Connections one client address may hold (None: no limit).
    pub max_per_address: Option<usize>,
    pub max_subscriptions: usize,
    pub max_channels: usize,
    pub max_retained_bytes: usize,
    /// Channels one publish may name (lhttp's `publish:` header).
    pub max_publish_channels: usize,
    /// Who may read /status.json and /metrics: client networks, and/or a bearer token.
    /// By default loopback only (127.0.0.0/8, ::1); `--status-token` alone: token holders only.
    pub status_allow: Option<Vec<IpNet>>,
    pub status_token: Option<String>,
    /// Proxies whose word is taken for the client's address (`--trusted-proxy`): their
    /// `X-Forwarded-For` / `Forwarded` headers, and their PROXY protocol headers. None:
    /// forwarding headers are ignored, and a PROXY header is taken from any peer.
    pub trusted_proxy: Option<TrustedProxies>,
    /// The plain listeners (`-l`, `--unix`, passed sockets) expect a PROXY protocol header
    /// (v1 or v2) before the first request (`--proxy-protocol`).
    pub proxy_protocol: bool,
    /// Log one line per request (target `access`, at info).
    pub access_log: bool,
    /// NATS servers joining this node to others (tried in turn).
    pub nats: Vec<crate::cluster::NatsUrl>,
    /// This node's name in the cluster (default msgbus-HOST-PID).
    pub node_name: Option<String>,
    /// The JetStream stream the cluster's history lives in (`--nats-stream`).
    pub nats_stream: String,
    /// Copies of the stream a clustered nats-server keeps (`--nats-replicas`, 1 to 5).
    pub nats_replicas: u8,
    /// SO_REUSEPORT on TCP listeners: several processes share one port.
    pub reuse_port: bool,
    /// Opens the eventsource-broker door, with its users (`key:secret` lines).
    pub esb_users: Option<PathBuf>,
    /// The broker's origin written into its `/es.js` (the original's `ORIGIN`); None: the
    /// script takes the origin it was loaded from.
    pub esb_origin: Option<String>,
    /// Key K's channel C is the public bus channel `esb/K/C` (native transports read it with a
    /// token that grants it) instead of a private one; needs tokens (`--jwt-secret[-file]`).
    pub esb_native_channels: bool,
    /// The eventsource-broker door's AMQP broker (`--amqp`), its exchange, the durable queue
    /// of this node if named, and the unacknowledged messages it may hold at once.
    pub amqp: Option<crate::amqp::AmqpUrl>,
    pub amqp_exchange: String,
    pub amqp_queue: Option<String>,
    pub amqp_prefetch: u16,
    /// Opens the martd door (`/pub`, `/sub`).
    pub martd: bool,
    /// Opens the Simple-Comet door (`/channels...`, `/clients...`).
    pub simple_comet: bool,
    /// The Simple-Comet door's own settings, under the original's flag names.
    pub comet: CometOptions,
    /// Opens the lhttp door (WebSocket outside `/msgbus/`, `POST /publish`).
    pub lhttp: bool,
    /// Where lhttp's `upstream:` calls may go, and their limits.
    pub upstream: crate::upstream::UpstreamOptions,
    /// lhttp commands whose messages an HTTP endpoint answers (`--lhttp-processor`).
    pub lhttp_processors: Vec<LhttpProcessor>,
    /// A connection with queued output that makes no write progress for this long is closed.
    pub write_timeout: Duration,
    /// HTTP/2 beside HTTP/1.1 (`--http2 on|off`): ALPN `h2` on TLS listeners, and a
    /// connection preface on plain ones.
    pub http2: bool,
    /// Streams an HTTP/2 connection may have open at once; one more is refused.
    pub http2_max_streams: u32,
    /// The initial stream window we advertise (the connection's is at least this, and 1 MiB).
    pub http2_window: u32,
    /// The HPACK dynamic table size we advertise and hold a client to.
    pub http2_hpack_table: u32,
    /// The plain listener is the default one, asked for by nobody: a socket handed over by
    /// the service manager takes its place.
    pub implicit_listen: bool,
    /// The file (`-c`) and command line this configuration was made from, so that SIGHUP can
    /// make it again.
    pub config_file: Option<PathBuf>,
    pub command_line: Vec<Setting>,
    /// Where kept messages and channel attributes are logged (`--data-dir`); None: memory only.
    pub data_dir: Option<PathBuf>,
    /// When a logged publish is acknowledged (`--fsync`).
    pub fsync: Fsync,
    /// A corrupt record in the middle of the log is cut there at start, with everything after
    /// it, instead of stopping the start (`--repair`).
    pub repair: bool,
    /// Log segments are this large at most (`--segment-size`).
    pub segment_size: usize,
}

/// An lhttp processor: messages with this command go to this URL, and its answer back to the
/// client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LhttpProcessor {
    pub command: String,
    pub url: String,
}

/// Simple-Comet-Server's settings, with its defaults.
#[derive(Debug, Clone)]
pub struct CometOptions {
    /// A held read is answered with no messages after this (`--http-timeout`).
    pub http_timeout: Duration,
    /// A registered client is forgotten this long after its last read (`--session-timeout`).
    pub session_timeout: Duration,
    /// A session channel no client reads is removed after this (`--inactive-channel-timeout`).
    pub inactive_channel_timeout: Duration,
    /// Messages a channel keeps when created without `max_messages`.
    pub max_messages_per_channel: u64,
    /// JSON (not JSON-P) answers wrapped in `/*-secure- ... */` (`--quote-json`).
    pub quote_json: bool,
    /// `GET /status.json` answered in Simple-Comet's format (`--enable-status`).
    pub enable_status: bool,
}

impl Default for CometOptions {
    fn default() -> Self {
        // Simple-Comet-Server's own defaults (its codec names them; a test there checks these).
        CometOptions {
            http_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(60),
            inactive_channel_timeout: Duration::from_secs(90),
            max_messages_per_channel: 100,
            quote_json: false,
            enable_status: false,
        }
    }
}

/// An address and prefix length (`127.0.0.1`, `10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies `--trusted-proxy` names: networks, and `unix` for the peers of the UNIX-socket
/// listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    pub nets: Vec<IpNet>,
    pub unix: bool,
}

impl TrustedProxies {
    pub fn parse(text: &str) -> Option<TrustedProxies> {
        let mut trusted = TrustedProxies::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "unix" {
                trusted.unix = true;
            } else {
                trusted.nets.push(IpNet::parse(item)?);
            }
        }
        Some(trusted)
    }

    pub fn trusts_ip(&self, ip: std::net::IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            tls_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            unix: None,
            unix_mode: DEFAULT_UNIX_MODE,
            docroot: None,
            secret: None,
            verbosity: 0,
            max_connections: None,
            max_head: DEFAULT_MAX_HEAD,
            max_body: DEFAULT_MAX_BODY,
            max_queue: DEFAULT_MAX_QUEUE,
            slow_policy: SlowPolicy::DropOldest,
            socket_send_buffer: DEFAULT_SOCKET_SEND_BUFFER,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            history: DEFAULT_HISTORY,
            max_history: DEFAULT_MAX_HISTORY,
            message_lifetime: DEFAULT_MESSAGE_LIFETIME,
            channel_timeout: DEFAULT_CHANNEL_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            max_ws_message: None,
            allow_origins: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            log_file: None,
            pid_file: None,
            user: None,
            jwt_secret: None,
            jwt_secret_file: None,
            max_per_address: None,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_channels: DEFAULT_MAX_CHANNELS,
            max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
            max_publish_channels: crate::gate::DEFAULT_MAX_PUBLISH_CHANNELS,
            status_allow: Some(loopback_nets()),
            status_token: None,
            trusted_proxy: None,
            proxy_protocol: false,
            access_log: false,
            nats: Vec::new(),
            nats_stream: crate::cluster::DEFAULT_STREAM.to_string(),
            nats_replicas: 1,
            node_name: None,
            reuse_port: false,
            esb_users: None,
            esb_origin: None,
            esb_native_channels: false,
            amqp: None,
            amqp_exchange: crate::amqp::DEFAULT_EXCHANGE.to_string(),
            amqp_queue: None,
            amqp_prefetch: crate::amqp::DEFAULT_PREFETCH,
            martd: false,
            simple_comet: false,
            comet: CometOptions::default(),
            lhttp: false,
            upstream: crate::upstream::UpstreamOptions::default(),
            lhttp_processors: Vec::new(),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            http2: true,
            http2_max_streams: DEFAULT_HTTP2_MAX_STREAMS,
            http2_window: DEFAULT_HTTP2_WINDOW,
            http2_hpack_table: DEFAULT_HTTP2_HPACK_TABLE,
            implicit_listen: false,
            config_file: None,
            command_line: Vec::new(),
            data_dir: None,
            fsync: Fsync::Always,
            repair: false,
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// The networks that may read the status when no `--status-allow` or `--status-token` is
/// given: this host only.
pub fn loopback_nets() -> Vec<IpNet> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    vec![
        IpNet {
            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
            prefix: 8,
        },
        IpNet {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
    ]
}

#[derive(Debug)]
pub enum ConfigError {
    Usage(String),
    /// `flag` is the option's long name.
    BadValue {
        flag: &'static str,
        value: String,
        why: &'static str,
    },
    Docroot(PathBuf, std::io::Error),
    ConfigFile(PathBuf, std::io::Error),
    /// A config file's line and what is wrong with it.
    AtLine {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

impl ConfigError {
    /// The error, pointing at the config file line it came from.
    fn at(self, origin: &Origin) -> ConfigError {
        match origin {
            Origin::CommandLine => self,
            Origin::File { path, line } => ConfigError::AtLine {
                path: path.clone(),
                line: *line,
                why: match self {
                    ConfigError::Usage(why) => why,
                    other => other.to_string(),
                },
            },
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Usage(msg) => write!(f, "{msg} (see msgbus --help)"),
            ConfigError::BadValue { flag, value, why } => {
                write!(f, "invalid value {value:?} for --{flag}: {why}")
            }
            ConfigError::Docroot(path, e) => {
                write!(f, "invalid document root {}: {e}", path.display())
            }
            ConfigError::ConfigFile(path, e) => {
                write!(f, "cannot read config file {}: {e}", path.display())
            }
            ConfigError::AtLine { path, line, why } => {
                write!(f, "{}:{line}: {why}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// What the command line asked for.
pub enum Command {
    Serve(Box<Config>),
    Help,
    Version,
}

pub const USAGE: &str = "\
usage: msgbus [-c FILE] [OPTIONS]
       msgbus pub [-t TYPE] [-u USER[:PASS]] URL [FILE]
       msgbus sub [-v] [-u USER[:PASS]] URL

Options:
  -c FILE                 read options from FILE, one `long-option value` a line (the
                          command line overrides it; SIGHUP reads it again)
  -l ADDRESS              address to listen on (default: 0.0.0.0); repeat for several
  -p PORT                 port to listen on (default: 8888; 0 picks a free one)
  --tls-listen ADDRESS[:PORT]  an HTTPS listener (port default 8443); repeat for several
  --tls-cert FILE         certificate chain (PEM) for HTTPS
  --tls-key FILE          private key (PEM: RSA, ECDSA or Ed25519) for HTTPS
  --unix PATH             also listen on a UNIX-domain socket at PATH
  --unix-mode MODE        its permissions, octal (default: 660)
  -d DIRECTORY            document root for static files (default: none)
  -s SECRET               require this password (HTTP Basic) on every request
  -v[v[v]]                more log output (RUST_LOG overrides)
  --max-connections N     connections held at once (default: open-files limit - 32)
  --max-head BYTES        largest request head, else 431 (default: 16384)
  --max-body BYTES        largest request body, else 413 (default: 1048576)
  --max-queue BYTES       a subscriber's output queue limit (default: 1048576)
  --slow-policy drop|close  what a subscriber over --max-queue gets (default: drop)
  --socket-send-buffer BYTES  a subscriber socket's send buffer, counted in --max-queue
                          (default: 65536; 0: the kernel's autotuning)
  --head-timeout SECS     time for a whole request head (default: 10)
  --body-timeout SECS     time for a whole request body (default: 60)
  --keepalive-timeout SECS  idle time between requests (default: 60)
  --send-timeout SECS     time for a client to take a response (default: 60)
  --history N             messages a channel keeps for resuming clients (default: 100; 0: none)
  --max-history N         largest ?size= a publisher may set (default: 10000)
  --message-lifetime SECS how long a kept message lives (default: 3600)
  --channel-timeout SECS  an unused, empty channel is freed after this (default: 60)
  --ping-interval SECS    SSE comment / WebSocket ping on idle streams (default: 30)
  --poll-timeout SECS     how long a long-poll is held (default: 30)
  --max-ws-message BYTES  largest WebSocket message from a client (default: --max-body)
  --allow-origin LIST     origins allowed for CORS and WebSocket (comma list, or *)
  --shutdown-timeout SECS time queued output gets on SIGTERM (default: 5)
  --log FILE              log to FILE instead of stderr (reopened on SIGUSR1)
  --pid-file FILE         write the process id to FILE
  -u USER                 run as USER (and its group) once the listeners are bound
  --jwt-secret KEY        channels need a JWT (HS256) signed with KEY
  --max-per-address N     connections one client address may hold (default: no limit)
  --max-subscriptions N   channels one subscription may name (default: 64)
  --max-channels N        channels that may exist at once (default: 1000000)
  --max-retained-bytes N  bytes all histories may hold; oldest go first (default: 268435456)
  --max-publish-channels N  channels one publish may name (default: 64)
  --status-allow LIST     networks that may read /status.json and /metrics (e.g. 127.0.0.1,10.0.0.0/8)
  --status-token TOKEN    or a bearer token that may (neither: this host only, 127.0.0.0/8 and ::1)
  --access-log            log one line per request
  --trusted-proxy LIST    proxies whose X-Forwarded-For / Forwarded and PROXY headers give the
                          client's address (addresses, networks, `unix`; default: none)
  --proxy-protocol        plain listeners expect a PROXY protocol (v1 or v2) header first
  --nats URL              join other nodes through NATS JetStream
                          (nats:// or tls://[user:pass@|token@]host:port); repeat for failover
  --nats-stream NAME      the JetStream stream holding the cluster's messages (default: MSGBUS)
  --nats-replicas N       copies of the stream in a clustered nats-server, 1 to 5 (default: 1)
  --node-name NAME        this node's name in the cluster (default: msgbus-HOST-PID)
  --reuse-port            let several msgbus processes listen on the same port (SO_REUSEPORT)
  --esb-users FILE        open the eventsource-broker door (/eventsource, /socket, /event);
                          FILE has one key:secret per line
  --esb-origin ORIGIN     the broker's origin written into its /es.js (default: the origin
                          the script was loaded from)
  --esb-native-channels   key K's channel C is the native channel esb/K/C, readable with a
                          token granting it (needs --jwt-secret or --jwt-secret-file)
  --amqp URL              the door's AMQP broker (amqp[s]://user:pass@host:port/vhost): consume
                          its exchange and publish the door's events to it
  --amqp-exchange NAME    the fanout exchange (default: eventsource.fanout)
  --amqp-queue NAME       a durable queue of this node's own (default: a server-named,
                          exclusive one, whose messages are lost while the node is away)
  --amqp-prefetch N       unacknowledged messages in flight, 1 to 65535 (default: 256)
  --martd                 open the martd door (/pub, /sub)
  --simple-comet          open the Simple-Comet door (/channels.json, /clients.json, ...);
                          its own settings keep the original's names:
  --http-timeout SECS       a held read is answered empty after this (default: 30)
  --session-timeout SECS    a client is forgotten this long after its last read (default: 60)
  --inactive-channel-timeout SECS
                            a session channel nobody reads is removed after this (default: 90)
  --max-messages-per-channel N
                            messages a channel keeps by default (default: 100)
  --quote-json              wrap JSON answers in /*-secure- ... */
  --enable-status           answer /status.json in Simple-Comet's format
  --lhttp                 open the lhttp door (WebSocket outside /msgbus/, POST /publish)
  --lhttp-upstream URL    lhttp upstream: calls may go to URLs under this http:// prefix;
                          repeat for more (default: none, calls are refused)
  --upstream-timeout SECS an upstream call is given up after this (default: 10)
  --upstream-connections N  upstream calls running at once (default: 16)
  --upstream-queue N      upstream calls waiting or running; more are refused (default: 256)
  --lhttp-processor COMMAND=URL
                          lhttp messages with COMMAND are POSTed to URL (under an
                          --lhttp-upstream prefix) and its answer sent back; repeat for more
  --jwt-secret-file FILE  the same, the key read from FILE (re-read on SIGHUP)
  --write-timeout SECS    close a connection that takes none of its queued output for this
                          long (default: 60)
  --data-dir DIR          keep messages and channel attributes in a log in DIR, so that they
                          survive a restart or a crash (default: memory only)
  --fsync always|batch|never  when a logged publish is acknowledged: once on disk (always,
                          the default), once written with fdatasync every --fsync-interval
                          (batch), or at once (never)
  --fsync-interval MS     how often --fsync batch makes the log durable (default: 50)
  --repair                cut the log at a corrupt record instead of refusing to start
  --segment-size BYTES    a log segment's size before the next begins (default: 67108864)
  --http2 on|off          HTTP/2 beside HTTP/1.1: ALPN h2 on TLS, prior knowledge on plain
                          listeners (default: on)
  --http2-max-streams N   streams one HTTP/2 connection may have open, 1 to 10000; one more
                          is refused with REFUSED_STREAM (default: 128)
  --http2-window BYTES    what a client may send on a stream before it is granted more,
                          16384 to 2147483647 (default: 262144)
  --http2-hpack-table BYTES  the HPACK table a client may make us keep per connection,
                          0 to 1048576 (default: 4096)
  -h, --help              this text
  -V, --version           the version
";

impl Config {
    /// What `Access-Control-Allow-Origin` should say to a request from `origin`, if anything.
    pub fn allowed_origin<'a>(&self, origin: &'a str) -> Option<&'a str> {
        let list = self.allow_origins.as_ref()?;
        if list.iter().any(|o| o == "*") {
            return Some("*");
        }
        list.iter()
            .any(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/')))
            .then_some(origin)
    }

    /// Whether a WebSocket handshake from `origin` may proceed.
    pub fn websocket_origin_ok(&self, origin: Option<&str>) -> bool {
        match (&self.allow_origins, origin) {
            (None, _) | (Some(_), None) => true,
            (Some(_), Some(origin)) => self.allowed_origin(origin).is_some(),
        }
    }

    pub fn retention(&self) -> crate::bus::Retention {
        crate::bus::Retention {
            size: self.history,
            lifetime: self.message_lifetime,
        }
    }

    pub fn max_ws_message(&self) -> usize {
        self.max_ws_message.unwrap_or(self.max_body)
    }

    /// Parses the server's command line (without the program name), and the config file it
    /// names with `-c`, the command line winning.
    pub fn from_args<I>(args: I) -> Result<Command, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<std::ffi::OsString>,
    {
        use lexopt::prelude::*;
        let mut parser = lexopt::Parser::from_args(args);
        let usage = |e: lexopt::Error| ConfigError::Usage(e.to_string());
        let mut file = None;
        let mut settings = Vec::new();
        while let Some(arg) = parser.next().map_err(usage)? {
            let spec = match &arg {
                Short('h') | Long("help") => return Ok(Command::Help),
                Short('V') | Long("version") => return Ok(Command::Version),
                Short('c') | Long("config") => {
                    file = Some(PathBuf::from(string(&mut parser)?));
                    continue;
                }
                Short(c) => OPTIONS.iter().find(|spec| spec.short == Some(*c)),
                Long(name) => OPTIONS.iter().find(|spec| spec.long == *name),
                Value(_) => None,
            };
            let Some(spec) = spec else {
                return Err(usage(arg.unexpected()));
            };
            let value = match spec.takes {
                Takes::Value | Takes::Values => Some(string(&mut parser)?),
                Takes::Flag | Takes::Count => None,
            };
            settings.push(Setting {
                name: spec.long,
                value,
                origin: Origin::CommandLine,
            });
        }
        Config::load(file, settings).map(|cfg| Command::Serve(Box::new(cfg)))
    }

    /// The configuration from `file` (when given) and then `command_line`, which overrides it:
    /// a single-valued option given in both takes the command line's value, and a repeatable
    /// one (`listen`, `tls-listen`, `nats`, `lhttp-upstream`, `lhttp-processor`, `verbose`) given on the command
    /// line replaces all of the file's.
    pub fn load(file: Option<PathBuf>, command_line: Vec<Setting>) -> Result<Config, ConfigError> {
        let mut settings = match &file {
            Some(path) => read_config_file(path)?,
            None => Vec::new(),
        };
        settings.retain(|s| {
            let repeatable = spec(s.name).is_some_and(|spec| spec.takes.repeats());
            !(repeatable && command_line.iter().any(|c| c.name == s.name))
        });
        let mut builder = Builder::default();
        for setting in settings.iter().chain(&command_line) {
            builder
                .apply(setting.name, setting.value.clone())
                .map_err(|e| e.at(&setting.origin))?;
        }
        let mut cfg = builder.finish()?;
        cfg.config_file = file;
        cfg.command_line = command_line;
        Ok(cfg)
    }

    /// The SO_SNDBUF a subscriber's socket is given (0: none, autotuning). At most a quarter of
    /// `max_queue`, as the kernel holds up to twice the value (it counts its bookkeeping in).
    pub fn subscriber_send_buffer(&self) -> usize {
        self.socket_send_buffer.min(self.max_queue / 4)
    }

    /// Bytes a subscriber's own queue may hold: `max_queue` less what its socket may (twice
    /// the send buffer), so the two together stay within `max_queue`. Counting the kernel's
    /// share as full is exact when it matters: a queue only grows once the socket takes no more.
    pub fn subscriber_queue_limit(&self) -> usize {
        self.max_queue - 2 * self.subscriber_send_buffer()
    }

    /// Whether channels need a signed token (`--jwt-secret` or `--jwt-secret-file`).
    pub fn requires_tokens(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_secret_file.is_some()
    }

    /// The configuration made again from the same file (read anew) and command line: SIGHUP.
    pub fn reread(&self) -> Result<Config, ConfigError> {
        Config::load(self.config_file.clone(), self.command_line.clone())
    }
}

/// What a reload changes, by option name (never by value: some are secrets).
pub struct Changes {
    /// Applied from now on.
    pub live: Vec<&'static str>,
    /// Taken when a listener was bound, a door opened or the process set up: these keep their
    /// running values until a restart.
    pub fixed: Vec<&'static str>,
}

impl Changes {
    /// Compares the running configuration with a new one, and puts the running values back
    /// into the new one where only a restart can change them.
    pub fn between(old: &Config, new: &mut Config) -> Changes {
        // Every field is named here, so that a new option cannot be forgotten by reload.
        let Config {
            listen: _,
            tls_listen: _,
            tls_cert: _,
            tls_key: _,
            unix: _,
            unix_mode: _,
            docroot: _,
            secret: _,
            verbosity: _,
            max_connections: _,
            max_head: _,
            max_body: _,
            max_queue: _,
            slow_policy: _,
            socket_send_buffer: _,
            head_timeout: _,
            body_timeout: _,
            keepalive_timeout: _,
            send_timeout: _,
            history: _,
            max_history: _,
            message_lifetime: _,
            channel_timeout: _,
            ping_interval: _,
            poll_timeout: _,
            max_ws_message: _,
            allow_origins: _,
            shutdown_timeout: _,
            log_file: _,
            pid_file: _,
            user: _,
            jwt_secret: _,
            jwt_secret_file: _,
            max_per_address: _,
            max_subscriptions: _,
            max_channels: _,
            max_retained_bytes: _,
            max_publish_channels: _,
            status_allow: _,
            status_token: _,
            trusted_proxy: _,
            proxy_protocol: _,
            access_log: _,
            nats: _,
            node_name: _,
            nats_stream: _,
            nats_replicas: _,
            reuse_port: _,
            esb_users: _,
            esb_origin: _,
            esb_native_channels: _,
            amqp: _,
            amqp_exchange: _,
            amqp_queue: _,
            amqp_prefetch: _,
            martd: _,
            simple_comet: _,
            comet: _,
            lhttp: _,
            upstream: _,
            lhttp_processors: _,
            write_timeout: _,
            http2: _,
            http2_max_streams: _,
            http2_window: _,
            http2_hpack_table: _,
            implicit_listen: _,
            config_file: _,
            command_line: _,
            data_dir: _,
            fsync: _,
            repair: _,
            segment_size: _,
        } = old;
        let mut changes = Changes {
            live: Vec::new(),
            fixed: Vec::new(),
        };
        fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
            format!("{a:?}") != format!("{b:?}")
        }
        macro_rules! live {
            ($($($field:ident).+ => $name:literal),* $(,)?) => {$(
                if differs(&old.$($field).+, &new.$($field).+) {
                    changes.live.push($name);
                }
            )*};
        }
        macro_rules! fixed {
            ($($($field:ident).+ => $name:literal),* $(,)?) => {$(
                if differs(&old.$($field).+, &new.$($field).+) {
                    changes.fixed.push($name);
                    new.$($field).+ = old.$($field).+.clone();
                }
            )*};
        }
        fixed!(
            listen => "listen",
            implicit_listen => "listen",
            tls_listen => "tls-listen",
            unix => "unix",
            unix_mode => "unix-mode",
            user => "user",
            pid_file => "pid-file",
            log_file => "log",
            reuse_port => "reuse-port",
            max_connections => "max-connections",
            proxy_protocol => "proxy-protocol",
            nats => "nats",
            node_name => "node-name",
            esb_native_channels => "esb-native-channels",
            amqp => "amqp",
            amqp_exchange => "amqp-exchange",
            amqp_queue => "amqp-queue",
            amqp_prefetch => "amqp-prefetch",
            nats_stream => "nats-stream",
            nats_replicas => "nats-replicas",
            martd => "martd",
            simple_comet => "simple-comet",
            lhttp => "lhttp",
            upstream.allow => "lhttp-upstream",
            upstream.timeout => "upstream-timeout",
            upstream.connections => "upstream-connections",
            upstream.queue => "upstream-queue",
            data_dir => "data-dir",
            fsync => "fsync",
            repair => "repair",
            segment_size => "segment-size",
        );
        // Opening or closing the door needs a restart; a new users file does not.
        if old.esb_users.is_some() != new.esb_users.is_some() {
            changes.fixed.push("esb-users");
            new.esb_users = old.esb_users.clone();
        }
        // Native esb/K/C channels are open only to token holders: a reload that would leave
        // them without tokens keeps the running token settings.
        if new.esb_native_channels && !new.requires_tokens() {
            changes.fixed.push("jwt-secret");
            new.jwt_secret = old.jwt_secret.clone();
            new.jwt_secret_file = old.jwt_secret_file.clone();
        }
        // Connections are counted per address only while the limit is on.
        if old.max_per_address.is_some() != new.max_per_address.is_some() {
            changes.fixed.push("max-per-address");
            new.max_per_address = old.max_per_address;
        }
        // The certificate belongs to the TLS listeners, which stay.
        if new.tls_cert.is_none() && old.tls_cert.is_some() {
            new.tls_cert = old.tls_cert.clone();
            new.tls_key = old.tls_key.clone();
        }
        changes.fixed.dedup();
        live!(
            tls_cert => "tls-cert",
            tls_key => "tls-key",
            docroot => "docroot",
            secret => "secret",
            verbosity => "verbose",
            max_head => "max-head",
            max_body => "max-body",
            max_queue => "max-queue",
            slow_policy => "slow-policy",
            socket_send_buffer => "socket-send-buffer",
            head_timeout => "head-timeout",
            body_timeout => "body-timeout",
            keepalive_timeout => "keepalive-timeout",
            send_timeout => "send-timeout",
            history => "history",
            max_history => "max-history",
            message_lifetime => "message-lifetime",
            channel_timeout => "channel-timeout",
            ping_interval => "ping-interval",
            poll_timeout => "poll-timeout",
            max_ws_message => "max-ws-message",
            allow_origins => "allow-origin",
            shutdown_timeout => "shutdown-timeout",
            jwt_secret => "jwt-secret",
            jwt_secret_file => "jwt-secret-file",
            max_per_address => "max-per-address",
            max_subscriptions => "max-subscriptions",
            max_channels => "max-channels",
            max_retained_bytes => "max-retained-bytes",
            max_publish_channels => "max-publish-channels",
            status_allow => "status-allow",
            status_token => "status-token",
            trusted_proxy => "trusted-proxy",
            write_timeout => "write-timeout",
            http2 => "http2",
            // The three below are advertised when a connection opens: they apply to
            // connections opened after the reload.
            http2_max_streams => "http2-max-streams",
            http2_window => "http2-window",
            http2_hpack_table => "http2-hpack-table",
            access_log => "access-log",
            esb_users => "esb-users",
            esb_origin => "esb-origin",
            lhttp_processors => "lhttp-processor",
            comet.http_timeout => "http-timeout",
            comet.session_timeout => "session-timeout",
            comet.inactive_channel_timeout => "inactive-channel-timeout",
            comet.max_messages_per_channel => "max-messages-per-channel",
            comet.quote_json => "quote-json",
            comet.enable_status => "enable-status",
        );
        changes
    }
}

/// Where a setting came from, so that an error can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    CommandLine,
    File { path: PathBuf, line: usize },
}

/// One option as given, under its long name (the name it has in a config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub value: Option<String>,
    pub origin: Origin,
}

/// An option the server takes.
struct Spec {
    long: &'static str,
    short: Option<char>,
    takes: Takes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// `--name VALUE`; given again, the last one wins.
    Value,
    /// `--name VALUE`, repeatable: the values add up.
    Values,
    /// `--name` alone (in a file: `name`, or `name yes|no`).
    Flag,
    /// `-v`: each one counts (in a file: `verbose`, or `verbose N`).
    Count,
}

impl Takes {
    fn repeats(self) -> bool {
        matches!(self, Takes::Values | Takes::Count)
    }
}

const fn value(long: &'static str) -> Spec {
    Spec {
        long,
        short: None,
        takes: Takes::Value,
    }
}

const fn short(long: &'static str, short: char, takes: Takes) -> Spec {
    Spec {
        long,
        short: Some(short),
        takes,
    }
}

const fn values(long: &'static str) -> Spec {
    Spec {
        long,
        short: None,
        takes: Takes::Values,
    }
}

const fn flag(long: &'static str) -> Spec {
    Spec {
        long,
        short: None,
        takes: Takes::Flag,
    }
}

/// Every option of the server: the command line and the config file take the same ones.
const OPTIONS: &[Spec] = &[
    short("listen", 'l', Takes::Values),
    short("port", 'p', Takes::Value),
    values("tls-listen"),
    value("tls-cert"),
    value("tls-key"),
    value("unix"),
    value("unix-mode"),
    short("docroot", 'd', Takes::Value),
    short("secret", 's', Takes::Value),
    short("verbose", 'v', Takes::Count),
    value("max-connections"),
    value("max-head"),
    value("max-body"),
    value("max-queue"),
    value("slow-policy"),
    value("socket-send-buffer"),
    value("head-timeout"),
    value("body-timeout"),
    value("keepalive-timeout"),
    value("send-timeout"),
    value("history"),
    value("max-history"),
    value("message-lifetime"),
    value("channel-timeout"),
    value("ping-interval"),
    value("poll-timeout"),
    value("max-ws-message"),
    value("allow-origin"),
    value("shutdown-timeout"),
    value("log"),
    value("pid-file"),
    short("user", 'u', Takes::Value),
    value("jwt-secret"),
    value("jwt-secret-file"),
    value("max-per-address"),
    value("max-subscriptions"),
    value("max-channels"),
    value("max-retained-bytes"),
    value("max-publish-channels"),
    value("status-allow"),
    value("status-token"),
    flag("access-log"),
    value("trusted-proxy"),
    flag("proxy-protocol"),
    values("nats"),
    value("node-name"),
    value("nats-stream"),
    value("nats-replicas"),
    flag("reuse-port"),
    value("esb-users"),
    value("esb-origin"),
    flag("esb-native-channels"),
    value("amqp"),
    value("amqp-exchange"),
    value("amqp-queue"),
    value("amqp-prefetch"),
    flag("martd"),
    flag("simple-comet"),
    value("http-timeout"),
    value("session-timeout"),
    value("inactive-channel-timeout"),
    value("max-messages-per-channel"),
    flag("quote-json"),
    flag("enable-status"),
    flag("lhttp"),
    values("lhttp-upstream"),
    value("upstream-timeout"),
    value("upstream-connections"),
    value("upstream-queue"),
    values("lhttp-processor"),
    value("write-timeout"),
    value("data-dir"),
    value("fsync"),
    value("fsync-interval"),
    flag("repair"),
    value("segment-size"),
    value("http2"),
    value("http2-max-streams"),
    value("http2-window"),
    value("http2-hpack-table"),
];

fn spec(long: &str) -> Option<&'static Spec> {
    OPTIONS.iter().find(|spec| spec.long == long)
}

/// Reads a config file in redis.conf's manner: one option a line, its long name and its value
/// (`max-queue 65536`), a flag alone (`martd`), `#` starting a comment line, a value in double
/// quotes when it has spaces at either end. Only names and the presence of values are checked
/// here; values are checked as the command line's are, and their errors carry the line.
pub fn read_config_file(path: &Path) -> Result<Vec<Setting>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::ConfigFile(path.to_path_buf(), e))?;
    let mut settings = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let origin = Origin::File {
            path: path.to_path_buf(),
            line: index + 1,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((name, rest)) => (name, rest.trim()),
            None => (line, ""),
        };
        let name = name.strip_prefix("--").unwrap_or(name);
        let fail = |why: String| ConfigError::Usage(why).at(&origin);
        let Some(spec) = spec(name) else {
            return Err(fail(match name {
                "config" | "c" => "a config file cannot name another".to_string(),
                _ => format!("unknown option {name:?}"),
            }));
        };
        let value = match (spec.takes, rest) {
            (Takes::Value | Takes::Values, "") => {
                return Err(fail(format!("{name} needs a value")));
            }
            (_, "") => None,
            (_, quoted)
                if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') =>
            {
                Some(quoted[1..quoted.len() - 1].to_string())
            }
            (_, value) => Some(value.to_string()),
        };
        settings.push(Setting {
            name: spec.long,
            value,
            origin,
        });
    }
    Ok(settings)
}

/// The configuration as settings are applied one by one, before the listeners are put
/// together and the whole checked.
#[derive(Default)]
struct Builder {
    cfg: Config,
    addresses: Vec<String>,
    port: Option<u16>,
    tls_addresses: Vec<String>,
    /// `--status-allow` was given (a status token alone then replaces the loopback default).
    status_allow_given: bool,
    /// `--fsync-interval`, in whatever order it came with `--fsync batch`.
    fsync_interval: Option<Duration>,
}

impl Builder {
    fn apply(&mut self, name: &'static str, value: Option<String>) -> Result<(), ConfigError> {
        let cfg = &mut self.cfg;
        let flag = name;
        let text = || value.clone().unwrap_or_default();
        match name {
            // Checked here so that a config file's error names the line; the port comes later.
            "listen" | "tls-listen" => {
                let address = text();
                socket_addr(name, &address, 0)?;
                match name {
                    "listen" => self.addresses.push(address),
                    _ => self.tls_addresses.push(address),
                }
            }
            "port" => self.port = Some(number(flag, text())?),
            "tls-cert" => cfg.tls_cert = Some(PathBuf::from(text())),
            "tls-key" => cfg.tls_key = Some(PathBuf::from(text())),
            "unix" => cfg.unix = Some(PathBuf::from(text())),
            "unix-mode" => {
                let value = text();
                cfg.unix_mode = u32::from_str_radix(&value, 8)
                    .ok()
                    .filter(|mode| *mode <= 0o777)
                    .ok_or(ConfigError::BadValue {
                        flag,
                        value,
                        why: "expected an octal mode such as 660",
                    })?;
            }
            "docroot" => cfg.docroot = Some(PathBuf::from(text())),
            "secret" => cfg.secret = Some(text()),
            "verbose" => match value {
                None => cfg.verbosity = cfg.verbosity.saturating_add(1),
                Some(n) => cfg.verbosity = number(flag, n)?,
            },
            "max-connections" => cfg.max_connections = Some(positive(flag, text())?),
            "max-head" => cfg.max_head = positive(flag, text())?,
            "max-body" => cfg.max_body = number(flag, text())?,
            "max-queue" => cfg.max_queue = positive(flag, text())?,
            "socket-send-buffer" => cfg.socket_send_buffer = number(flag, text())?,
            "slow-policy" => {
                let value = text();
                cfg.slow_policy = match value.as_str() {
                    "drop" => SlowPolicy::DropOldest,
                    "close" => SlowPolicy::Close,
                    _ => {
                        return Err(ConfigError::BadValue {
                            flag,
                            value,
                            why: "expected drop or close",
                        })
                    }
                }
            }
            "head-timeout" => cfg.head_timeout = seconds(flag, text())?,
            "body-timeout" => cfg.body_timeout = seconds(flag, text())?,
            "keepalive-timeout" => cfg.keepalive_timeout = seconds(flag, text())?,
            "send-timeout" => cfg.send_timeout = seconds(flag, text())?,
            "history" => cfg.history = number(flag, text())?,
            "max-history" => cfg.max_history = number(flag, text())?,
            "message-lifetime" => cfg.message_lifetime = seconds(flag, text())?,
            "channel-timeout" => cfg.channel_timeout = seconds(flag, text())?,
            "ping-interval" => cfg.ping_interval = seconds(flag, text())?,
            "poll-timeout" => cfg.poll_timeout = seconds(flag, text())?,
            "max-ws-message" => cfg.max_ws_message = Some(positive(flag, text())?),
            "allow-origin" => {
                let origins = text()
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_string())
                    .filter(|o| !o.is_empty())
                    .collect();
                cfg.allow_origins = Some(origins);
            }
            "shutdown-timeout" => cfg.shutdown_timeout = seconds(flag, text())?,
            "log" => cfg.log_file = Some(PathBuf::from(text())),
            "pid-file" => cfg.pid_file = Some(PathBuf::from(text())),
            "user" => cfg.user = Some(text()),
            "jwt-secret" => cfg.jwt_secret = Some(text()),
            "jwt-secret-file" => cfg.jwt_secret_file = Some(PathBuf::from(text())),
            "max-per-address" => cfg.max_per_address = Some(positive(flag, text())?),
            "max-subscriptions" => cfg.max_subscriptions = positive(flag, text())?,
            "max-channels" => cfg.max_channels = positive(flag, text())?,
            "max-retained-bytes" => cfg.max_retained_bytes = positive(flag, text())?,
            "max-publish-channels" => cfg.max_publish_channels = positive(flag, text())?,
            "status-allow" => {
                let value = text();
                let nets: Option<Vec<IpNet>> = value
                    .split(',')
                    .filter(|n| !n.trim().is_empty())
                    .map(IpNet::parse)
                    .collect();
                self.status_allow_given = true;
                cfg.status_allow = Some(nets.ok_or(ConfigError::BadValue {
                    flag,
                    value,
                    why: "expected addresses or networks such as 127.0.0.1,10.0.0.0/8",
                })?);
            }
            "status-token" => cfg.status_token = Some(text()),
            "trusted-proxy" => {
                let value = text();
                cfg.trusted_proxy =
                    Some(TrustedProxies::parse(&value).ok_or(ConfigError::BadValue {
                        flag,
                        value,
                        why: "expected addresses, networks or unix, such as 127.0.0.1,10.0.0.0/8",
                    })?);
            }
            "proxy-protocol" => cfg.proxy_protocol = switch(flag, value)?,
            "access-log" => cfg.access_log = switch(flag, value)?,
            "nats" => {
                let value = text();
                let url = crate::cluster::NatsUrl::parse(&value).ok_or(ConfigError::BadValue {
                    flag,
                    value,
                    why: "expected nats://[user:pass@|token@]host[:port] or tls://...",
                })?;
                cfg.nats.push(url);
            }
            "node-name" => cfg.node_name = Some(text()),
            "nats-stream" => {
                let value = text();
                if !crate::cluster::jetstream::is_name(&value) {
                    return Err(ConfigError::BadValue {
                        flag,
                        value,
                        why: "expected a stream name (no spaces, '.', '*' or '>')",
                    });
                }
                cfg.nats_stream = value;
            }
            "nats-replicas" => {
                let value = text();
                cfg.nats_replicas = match value.parse::<u8>() {
                    Ok(n @ 1..=5) => n,
                    _ => {
                        return Err(ConfigError::BadValue {
                            flag,
                            value,
                            why: "expected 1 to 5",
                        })
                    }
                };
            }
            "reuse-port" => cfg.reuse_port = switch(flag, value)?,
            "esb-users" => cfg.esb_users = Some(PathBuf::from(text())),
            "esb-origin" => {
                let value = text().trim_end_matches('/').to_string();
                if !valid_origin(&value) {
                    return Err(ConfigError::BadValue {
                        flag,
                        value,
                        why: "expected an origin such as https://push.example.com:8443",
                    });
                }
                cfg.esb_origin = Some(value);
            }
            "esb-native-channels" => cfg.esb_native_channels = switch(flag, value)?,
            "amqp" => {
                let value = text();
                let url = crate::amqp::AmqpUrl::parse(&value).ok_or(ConfigError::BadValue {
                    flag,
                    value,
                    why: "expected amqp://[user:pass@]host[:port][/vhost] or amqps://...",
                })?;
                cfg.amqp = Some(url);
            }
            "amqp-exchange" => cfg.amqp_exchange = amqp_name(flag, text())?,
            "amqp-queue" => cfg.amqp_queue = Some(amqp_name(flag, text())?),
            "amqp-prefetch" => {
                let n = positive(flag, text())?;
                cfg.amqp_prefetch = u16::try_from(n).map_err(|_| ConfigError::BadValue {
                    flag,
                    value: n.to_string(),
                    why: "at most 65535",
                })?;
            }
            "martd" => cfg.martd = switch(flag, value)?,
            "simple-comet" => cfg.simple_comet = switch(flag, value)?,
            "http-timeout" => cfg.comet.http_timeout = seconds(flag, text())?,
            "session-timeout" => cfg.comet.session_timeout = seconds(flag, text())?,
            "inactive-channel-timeout" => {
                cfg.comet.inactive_channel_timeout = seconds(flag, text())?
            }
            "max-messages-per-channel" => {
                cfg.comet.max_messages_per_channel = positive(flag, text())? as u64
            }
            "quote-json" => cfg.comet.quote_json = switch(flag, value)?,
            "enable-status" => cfg.comet.enable_status = switch(flag, value)?,
            "lhttp" => cfg.lhttp = switch(flag, value)?,
            "lhttp-upstream" => cfg.upstream.allow.push(text()),
            "upstream-timeout" => cfg.upstream.timeout = seconds(flag, text())?,
            "upstream-connections" => cfg.upstream.connections = positive(flag, text())?,
            "upstream-queue" => cfg.upstream.queue = positive(flag, text())?,
            "lhttp-processor" => {
                let value = text();
                let processor = parse_processor(&value).map_err(|why| ConfigError::BadValue {
                    flag,
                    value: value.clone(),
                    why,
                })?;
                if cfg
                    .lhttp_processors
                    .iter()
                    .any(|p| p.command == processor.command)
                {
                    return Err(ConfigError::BadValue {
                        flag,
                        value,
                        why: "this command already has a processor",
                    });
                }
                cfg.lhttp_processors.push(processor);
            }
            "write-timeout" => cfg.write_timeout = seconds(flag, text())?,
            "data-dir" => cfg.data_dir = Some(PathBuf::from(text())),
            "fsync" => {
                let interval = match cfg.fsync {
                    Fsync::Batch(every) => every,
                    _ => DEFAULT_FSYNC_INTERVAL,
                };
                cfg.fsync = match text().as_str() {
                    "always" => Fsync::Always,
                    "batch" => Fsync::Batch(interval),
                    "never" => Fsync::Never,
                    _ => {
                        return Err(ConfigError::BadValue {
                            flag,
                            value: text(),
                            why: "expected always, batch or never",
                        })
                    }
                };
            }
            "fsync-interval" => {
                let ms = positive(flag, text())? as u64;
                self.fsync_interval = Some(Duration::from_millis(ms));
            }
            "repair" => cfg.repair = switch(flag, value)?,
            "segment-size" => cfg.segment_size = positive(flag, text())?.max(4096),
            "http2" => {
                let value = text();
                cfg.http2 = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => {
                        return Err(ConfigError::BadValue {
                            flag,
                            value,
                            why: "expected on or off",
                        })
                    }
                };
            }
            "http2-max-streams" => {
                let range = (1, MAX_HTTP2_MAX_STREAMS);
                cfg.http2_max_streams = within(flag, text(), range, "expected 1 to 10000")?;
            }
            "http2-window" => {
                let range = (MIN_HTTP2_WINDOW, i32::MAX as u32);
                cfg.http2_window = within(flag, text(), range, "expected 16384 to 2147483647")?;
            }
            "http2-hpack-table" => {
                let range = (0, MAX_HTTP2_HPACK_TABLE);
                cfg.http2_hpack_table = within(flag, text(), range, "expected 0 to 1048576")?;
            }
            _ => return Err(ConfigError::Usage(format!("unknown option {name:?}"))),
        }
        Ok(())
    }

    /// Puts the listeners together and checks what needs several options at once.
    fn finish(self) -> Result<Config, ConfigError> {
        let Builder {
            mut cfg,
            mut addresses,
            port,
            tls_addresses,
            status_allow_given,
            fsync_interval,
        } = self;
        match (&mut cfg.fsync, fsync_interval) {
            (Fsync::Batch(every), Some(interval)) => *every = interval,
            (_, Some(_)) => {
                return Err(ConfigError::Usage(
                    "--fsync-interval goes with --fsync batch".into(),
                ))
            }
            _ => {}
        }
        if cfg.data_dir.is_none() && cfg.repair {
            return Err(ConfigError::Usage("--repair needs --data-dir".into()));
        }
        // In a cluster the stream numbers every message and keeps the history: a node's own
        // log, or its own numbering of an exchange's messages, would stand beside that order.
        if !cfg.nats.is_empty() && cfg.data_dir.is_some() {
            return Err(ConfigError::Usage(
                "--data-dir is for one node; with --nats the JetStream stream keeps the history"
                    .into(),
            ));
        }
        if !cfg.nats.is_empty() && cfg.amqp.is_some() {
            return Err(ConfigError::Usage(
                "--amqp is for nodes not joined through --nats: the stream gives every message its place, the exchange cannot".into(),
            ));
        }
        // A status token alone means "whoever holds it", not "and this host too".
        if cfg.status_token.is_some() && !status_allow_given {
            cfg.status_allow = None;
        }
        // The default plain listener, unless only other kinds were asked for.
        let other_listeners = !tls_addresses.is_empty() || cfg.unix.is_some();
        if addresses.is_empty() && (port.is_some() || !other_listeners) {
            addresses.push(DEFAULT_ADDRESS.to_string());
            cfg.implicit_listen = port.is_none();
        }
        for address in tls_addresses {
            cfg.tls_listen
                .push(socket_addr("tls-listen", &address, DEFAULT_TLS_PORT)?);
        }
        let tls_files = cfg.tls_cert.is_some() && cfg.tls_key.is_some();
        if !cfg.tls_listen.is_empty() && !tls_files {
            return Err(ConfigError::Usage(
                "--tls-listen needs --tls-cert and --tls-key".into(),
            ));
        }
        if cfg.tls_listen.is_empty() && (cfg.tls_cert.is_some() || cfg.tls_key.is_some()) {
            return Err(ConfigError::Usage(
                "--tls-cert and --tls-key need a --tls-listen address".into(),
            ));
        }
        if cfg.amqp.is_some() && cfg.esb_users.is_none() {
            return Err(ConfigError::Usage(
                "--amqp carries the eventsource-broker door's events: it needs --esb-users".into(),
            ));
        }
        if cfg.esb_native_channels && cfg.esb_users.is_none() {
            return Err(ConfigError::Usage(
                "--esb-native-channels names the eventsource-broker door's channels: \
                 it needs --esb-users"
                    .into(),
            ));
        }
        if cfg.esb_native_channels && !cfg.requires_tokens() {
            return Err(ConfigError::Usage(
                "--esb-native-channels opens every api key's channels to native clients: \
                 it needs --jwt-secret or --jwt-secret-file"
                    .into(),
            ));
        }
        let port = port.unwrap_or(DEFAULT_PORT);
        for address in addresses {
            cfg.listen.push(socket_addr("listen", &address, port)?);
        }
        check_processors(&cfg)?;
        if let Some(dir) = cfg.docroot.take() {
            // Canonical once, so that every static lookup can compare prefixes component-wise.
            let canonical = dir
                .canonicalize()
                .map_err(|e| ConfigError::Docroot(dir.clone(), e))?;
            if !canonical.is_dir() {
                let e = std::io::Error::other("not a directory");
                return Err(ConfigError::Docroot(dir, e));
            }
            cfg.docroot = Some(canonical);
        }
        Ok(cfg)
    }
}

/// Whether `text` is an origin `--esb-origin` takes: `http://` or `https://`, a host (name,
/// IPv4 or bracketed IPv6 address) and an optional port, nothing after.
fn valid_origin(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

/// `COMMAND=URL`: the command an lhttp token (it is matched exactly against messages' commands
/// and sent in a header), the URL one the upstream client can call.
fn parse_processor(text: &str) -> Result<LhttpProcessor, &'static str> {
    let (command, url) = text
        .split_once('=')
        .ok_or("expected COMMAND=URL, such as chat=http://127.0.0.1:8080/chat")?;
    if !crate::upstream::request::is_token(command.as_bytes()) {
        return Err("the command must be a token (letters, digits, - _ . and the like)");
    }
    crate::upstream::request::HttpUrl::parse(url)
        .map_err(|_| "expected an http:// URL after COMMAND=")?;
    Ok(LhttpProcessor {
        command: command.to_string(),
        url: url.to_string(),
    })
}

/// A processor is called through the upstream client, so only where `--lhttp-upstream`
/// allows, and only with the lhttp door open.
fn check_processors(cfg: &Config) -> Result<(), ConfigError> {
    use crate::upstream::request::HttpUrl;
    let Some(first) = cfg.lhttp_processors.first() else {
        return Ok(());
    };
    if !cfg.lhttp {
        return Err(ConfigError::Usage(format!(
            "--lhttp-processor {}={} needs --lhttp",
            first.command, first.url
        )));
    }
    let allowed: Vec<HttpUrl> = cfg
        .upstream
        .allow
        .iter()
        .filter_map(|prefix| HttpUrl::parse(prefix).ok())
        .collect();
    for processor in &cfg.lhttp_processors {
        let under = HttpUrl::parse(&processor.url)
            .is_ok_and(|url| allowed.iter().any(|prefix| url.is_under(prefix)));
        if !under {
            return Err(ConfigError::Usage(format!(
                "--lhttp-processor {}={}: the URL is not under any --lhttp-upstream prefix",
                processor.command, processor.url
            )));
        }
    }
    Ok(())
}

fn string(parser: &mut lexopt::Parser) -> Result<String, ConfigError> {
    let value = parser
        .value()
        .map_err(|e| ConfigError::Usage(e.to_string()))?;
    value
        .into_string()
        .map_err(|v| ConfigError::Usage(format!("{v:?} is not valid UTF-8")))
}

/// A flag: given alone it is on; a config file may also say `yes` or `no`.
fn switch(flag: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match value.as_deref() {
        None | Some("yes") => Ok(true),
        Some("no") => Ok(false),
        Some(_) => Err(ConfigError::BadValue {
            flag,
            value: value.unwrap_or_default(),
            why: "a flag takes no value (or yes or no)",
        }),
    }
}

fn number<T: std::str::FromStr>(flag: &'static str, value: String) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadValue {
        flag,
        value,
        why: "expected a whole number",
    })
}

/// An exchange or queue name: an AMQP short string (at most 255 bytes), of one line.
fn amqp_name(flag: &'static str, value: String) -> Result<String, ConfigError> {
    if value.is_empty() || value.len() > 255 || value.chars().any(char::is_control) {
        return Err(ConfigError::BadValue {
            flag,
            value,
            why: "expected 1 to 255 bytes without control characters",
        });
    }
    Ok(value)
}

fn positive(flag: &'static str, value: String) -> Result<usize, ConfigError> {
    match number::<usize>(flag, value)? {
        0 => Err(ConfigError::BadValue {
            flag,
            value: "0".into(),
            why: "must be at least 1",
        }),
        n => Ok(n),
    }
}

/// A whole number from `min` to `max`; `why` says the range.
fn within(
    flag: &'static str,
    value: String,
    (min, max): (u32, u32),
    why: &'static str,
) -> Result<u32, ConfigError> {
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::BadValue { flag, value, why }),
    }
}

fn seconds(flag: &'static str, value: String) -> Result<Duration, ConfigError> {
    match value.parse::<f64>() {
        Ok(s) if s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(ConfigError::BadValue {
            flag,
            value,
            why: "expected a positive number of seconds",
        }),
    }
}

/// `-l` takes a bare address (v4 or v6, the port comes from `-p`) or a full `ADDRESS:PORT`.
fn socket_addr(option: &'static str, address: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    if let Ok(full) = address.parse::<SocketAddr>() {
        return Ok(full);
    }
    let bare = address.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, port)),
        Err(_) => Err(ConfigError::BadValue {
            flag: option,
            value: address.to_string(),
            why: "expected an IP address or ADDRESS:PORT",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<Config, ConfigError> {
        match Config::from_args(args.iter().copied())? {
            Command::Serve(cfg) => Ok(*cfg),
            _ => panic!("not a serve command"),
        }
    }

    #[test]
    fn listen_addresses() {
        let cases: &[(&[&str], &[&str])] = &[
            (&[], &["0.0.0.0:8888"]),
            (&["-p", "9000"], &["0.0.0.0:9000"]),
            (&["-l", "127.0.0.1", "-p", "0"], &["127.0.0.1:0"]),
            (&["-l", "::1", "-p", "80"], &["[::1]:80"]),
            (
                &["-l", "127.0.0.1:81", "-l", "127.0.0.2"],
                &["127.0.0.1:81", "127.0.0.2:8888"],
            ),
        ];
        for (args, want) in cases {
            let got: Vec<String> = serve(args)
                .unwrap()
                .listen
                .iter()
                .map(|a| a.to_string())
                .collect();
            assert_eq!(&got, want, "{args:?}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["-p", "http"], "-p"),
            (&["-p", "70000"], "-p"),
            (&["-l", "localhost"], "-l"),
            (&["--max-queue", "0"], "--max-queue"),
            (&["--slow-policy", "maybe"], "--slow-policy"),
            (&["--head-timeout", "-1"], "--head-timeout"),
            (&["--bogus"], "--bogus"),
            (&["-d", "/nonexistent/dir"], "/nonexistent/dir"),
            (&["--nats", "tls://h/x"], "--nats"),
            (&["--nats-stream", "a.b"], "--nats-stream"),
            (&["--nats-stream", "a b"], "--nats-stream"),
            (&["--nats-replicas", "0"], "--nats-replicas"),
            (&["--nats-replicas", "6"], "--nats-replicas"),
            (&["--http2-max-streams", "0"], "--http2-max-streams"),
            (&["--http2-max-streams", "10001"], "--http2-max-streams"),
            (&["--http2-window", "1000"], "--http2-window"),
            (&["--http2-window", "2147483648"], "--http2-window"),
            (&["--http2-hpack-table", "2000000"], "--http2-hpack-table"),
        ];
        for (args, flag) in cases {
            let err = serve(args).expect_err("should fail").to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    /// Writes `text` to a fresh file under the temporary directory and returns its path.
    fn config_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("msgbus-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_config_file_sets_what_the_command_line_does() {
        let path = config_file(
            "good.conf",
            "# comment\n\nlisten 127.0.0.1\nlisten 127.0.0.2:81\nport 9000\nmax-queue 4096\n\
             slow-policy close\n  martd\nlhttp no\nverbose\nverbose\nsecret \" two words \"\n\
             --history 5\n",
        );
        let file = path.to_str().unwrap();
        let cfg = serve(&["-c", file]).unwrap();
        let listen: Vec<String> = cfg.listen.iter().map(|a| a.to_string()).collect();
        assert_eq!(listen, ["127.0.0.1:9000", "127.0.0.2:81"]);
        assert_eq!(cfg.max_queue, 4096);
        assert_eq!(cfg.slow_policy, SlowPolicy::Close);
        assert!(cfg.martd && !cfg.lhttp);
        assert_eq!(cfg.verbosity, 2);
        assert_eq!(cfg.secret.as_deref(), Some(" two words "));
        assert_eq!(cfg.history, 5);
        assert_eq!(cfg.config_file.as_deref(), Some(path.as_path()));

        // The command line wins: a single value replaced, a repeatable option's list replaced.
        let cfg = serve(&["--max-queue", "8192", "-c", file, "-l", "::1", "-v"]).unwrap();
        let listen: Vec<String> = cfg.listen.iter().map(|a| a.to_string()).collect();
        assert_eq!(listen, ["[::1]:9000"]);
        assert_eq!(cfg.max_queue, 8192);
        assert_eq!(cfg.verbosity, 1);
        assert_eq!(cfg.history, 5);
    }

    #[test]
    fn a_bad_config_line_is_named_with_its_file_and_number() {
        let cases: &[(&str, &str)] = &[
            (
                "max-queue 0\n",
                ":1: invalid value \"0\" for --max-queue: must be at least 1",
            ),
            ("# ok\nbogus 1\n", ":2: unknown option \"bogus\""),
            ("\n\nmax-queue\n", ":3: max-queue needs a value"),
            ("martd please\n", ":1: invalid value \"please\" for --martd"),
            (
                "config other.conf\n",
                ":1: a config file cannot name another",
            ),
            (
                "port http\n",
                ":1: invalid value \"http\" for --port: expected a whole number",
            ),
            (
                "listen localhost\n",
                ":1: invalid value \"localhost\" for --listen",
            ),
            ("help\n", ":1: unknown option \"help\""),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let path = config_file(&format!("bad{i}.conf"), text);
            let err = serve(&["-c", path.to_str().unwrap()])
                .expect_err("should fail")
                .to_string();
            let want = format!("{}{want}", path.display());
            assert!(err.starts_with(&want), "{text:?}: {err}");
        }
        let err = serve(&["-c", "/nonexistent/msgbus.conf"]).expect_err("should fail");
        assert!(err
            .to_string()
            .starts_with("cannot read config file /nonexistent/msgbus.conf"));
    }

    #[test]
    fn every_option_of_the_table_is_applied() {
        for spec in OPTIONS {
            let value = match spec.takes {
                Takes::Flag | Takes::Count => None,
                _ => Some("1".to_string()),
            };
            let err = Builder::default().apply(spec.long, value).err();
            // A value of 1 may be refused as a value, never as an unknown option.
            assert!(
                !err.is_some_and(|e| e.to_string().contains("unknown option")),
                "{}",
                spec.long
            );
        }
    }

    #[test]
    fn http2_options_are_read_and_reload_for_new_connections() {
        let old = serve(&[]).unwrap();
        assert_eq!(
            (
                old.http2_max_streams,
                old.http2_window,
                old.http2_hpack_table
            ),
            (128, 262_144, 4096)
        );
        let args = [
            "--http2-max-streams",
            "5",
            "--http2-window",
            "16384",
            "--http2-hpack-table",
            "0",
        ];
        let mut new = serve(&args).unwrap();
        assert_eq!(
            (
                new.http2_max_streams,
                new.http2_window,
                new.http2_hpack_table
            ),
            (5, 16_384, 0)
        );
        let changes = Changes::between(&old, &mut new);
        assert_eq!(
            changes.live,
            ["http2-max-streams", "http2-window", "http2-hpack-table"]
        );
        assert!(changes.fixed.is_empty());
    }

    #[test]
    fn a_reload_names_changes_and_keeps_what_needs_a_restart() {
        let old = serve(&["-l", "127.0.0.1", "-s", "a", "--max-channels", "5"]).unwrap();
        let mut new = serve(&["-l", "::1", "-s", "b", "--max-channels", "5", "--martd"]).unwrap();
        let changes = Changes::between(&old, &mut new);
        assert_eq!(changes.live, ["secret"]);
        assert_eq!(changes.fixed, ["listen", "martd"]);
        assert_eq!(new.listen, old.listen);
        assert!(!new.martd);
        assert_eq!(new.secret.as_deref(), Some("b"));
        let mut same = old.clone();
        let changes = Changes::between(&old, &mut same);
        assert!(changes.live.is_empty() && changes.fixed.is_empty());
    }

    #[test]
    fn amqp_options_and_what_they_need() {
        let cfg = serve(&[
            "--esb-users",
            "/dev/null",
            "--amqp",
            "amqps://u:p@broker/v",
            "--amqp-queue",
            "node-1",
            "--amqp-prefetch",
            "10",
        ])
        .unwrap();
        let url = cfg.amqp.unwrap();
        assert_eq!((url.tls, url.port, url.vhost.as_str()), (true, 5671, "v"));
        assert_eq!(cfg.amqp_exchange, "eventsource.fanout");
        assert_eq!(
            (cfg.amqp_queue.as_deref(), cfg.amqp_prefetch),
            (Some("node-1"), 10)
        );
        let errors = [
            (&["--amqp", "amqp://h"][..], "needs --esb-users"),
            (&["--amqp", "http://h"], "--amqp"),
            (&["--amqp-prefetch", "0"], "at least 1"),
            (&["--amqp-prefetch", "65536"], "at most 65535"),
            (&["--amqp-queue", "a\nb"], "control characters"),
        ];
        for (args, want) in errors {
            let err = serve(args).err().unwrap().to_string();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    /// Native esb/K/C channels are never open without tokens: not at start, not after a
    /// reload that drops the token key, and the flag itself needs a restart.
    #[test]
    fn esb_native_channels_need_tokens() {
        let native = [
            "--esb-users",
            "/dev/null",
            "--esb-native-channels",
            "--jwt-secret",
            "k",
        ];
        let old = serve(&native).unwrap();
        assert!(old.esb_native_channels && old.requires_tokens());
        assert!(!serve(&native[..2]).unwrap().esb_native_channels);
        let file = ["--esb-users", "/dev/null", "--esb-native-channels"];
        assert!(serve(&[&file[..], &["--jwt-secret-file", "/k"]].concat()).is_ok());
        let errors = [
            (&file[..], "--esb-native-channels opens every api key's channels to native clients: it needs --jwt-secret or --jwt-secret-file (see msgbus --help)"),
            (&["--esb-native-channels", "--jwt-secret", "k"], "--esb-native-channels names the eventsource-broker door's channels: it needs --esb-users (see msgbus --help)"),
        ];
        for (args, want) in errors {
            assert_eq!(serve(args).err().unwrap().to_string(), want, "{args:?}");
        }

        // A new configuration without the flag and without tokens: the flag stays, and so
        // does the token key.
        let mut new = serve(&native[..2]).unwrap();
        let changes = Changes::between(&old, &mut new);
        assert_eq!(changes.fixed, ["esb-native-channels", "jwt-secret"]);
        assert!(changes.live.is_empty());
        assert!(new.esb_native_channels);
        assert_eq!(new.jwt_secret.as_deref(), Some("k"));
        // A new key is taken as usual.
        let mut new = serve(&[&native[..4], &["other"]].concat()).unwrap();
        let changes = Changes::between(&old, &mut new);
        assert_eq!((changes.fixed.len(), changes.live), (0, vec!["jwt-secret"]));
        // Turning the flag on needs a restart.
        let mut new = old.clone();
        let off = serve(&native[..2]).unwrap();
        new.esb_native_channels = true;
        let changes = Changes::between(&off, &mut new);
        assert_eq!(changes.fixed, ["esb-native-channels"]);
        assert!(!new.esb_native_channels);
    }

    #[test]
    fn limits_and_policy() {
        let cfg = serve(&["--max-queue", "4096", "--slow-policy", "close", "-vv"]).unwrap();
        assert_eq!(cfg.max_queue, 4096);
        assert_eq!(cfg.slow_policy, SlowPolicy::Close);
        assert_eq!(cfg.verbosity, 2);
    }

    #[test]
    fn the_send_buffer_counts_in_the_queue_limit() {
        // (--max-queue, --socket-send-buffer, SO_SNDBUF given, the queue's own share)
        let cases: &[(&str, &str, usize, usize)] = &[
            ("1048576", "65536", 65536, 1048576 - 131072),
            ("65536", "65536", 16384, 32768),
            ("4096", "0", 0, 4096),
            ("1", "65536", 0, 1),
        ];
        for (queue, sndbuf, given, share) in cases {
            let cfg = serve(&["--max-queue", queue, "--socket-send-buffer", sndbuf]).unwrap();
            assert_eq!(
                (cfg.subscriber_send_buffer(), cfg.subscriber_queue_limit()),
                (*given, *share),
                "{queue} {sndbuf}"
            );
        }
        assert_eq!(
            serve(&[]).unwrap().socket_send_buffer,
            DEFAULT_SOCKET_SEND_BUFFER
        );
    }

    #[test]
    fn status_is_for_this_host_unless_configured() {
        use std::net::IpAddr;
        let local: IpAddr = "127.0.0.2".parse().unwrap();
        let remote: IpAddr = "10.1.2.3".parse().unwrap();
        let six: IpAddr = "::1".parse().unwrap();
        let nets = serve(&[]).unwrap().status_allow.unwrap();
        assert!(nets.iter().any(|n| n.contains(local)));
        assert!(nets.iter().any(|n| n.contains(six)));
        assert!(!nets.iter().any(|n| n.contains(remote)));
        let cfg = serve(&["--status-token", "t"]).unwrap();
        assert_eq!(cfg.status_allow, None);
        let cfg = serve(&["--status-allow", "10.0.0.0/8", "--status-token", "t"]).unwrap();
        assert_eq!(cfg.status_allow.unwrap().len(), 1);
    }

    #[test]
    fn trusted_proxies_are_networks_and_unix() {
        use std::net::IpAddr;
        let cfg = serve(&[
            "--trusted-proxy",
            "127.0.0.1, 10.0.0.0/8,unix",
            "--proxy-protocol",
        ]);
        let cfg = cfg.unwrap();
        let trusted = cfg.trusted_proxy.unwrap();
        assert!(trusted.unix && cfg.proxy_protocol);
        for (ip, want) in [
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("10.9.8.7", true),
        ] {
            assert_eq!(
                trusted.trusts_ip(ip.parse::<IpAddr>().unwrap()),
                want,
                "{ip}"
            );
        }
        assert_eq!(serve(&[]).unwrap().trusted_proxy, None);
        let bad = serve(&["--trusted-proxy", "10.0.0.0/33"]).err().unwrap();
        assert!(bad.to_string().contains("--trusted-proxy"), "{bad}");
        let old = serve(&[]).unwrap();
        let mut new = serve(&["--trusted-proxy", "::1", "--proxy-protocol"]).unwrap();
        let changes = Changes::between(&old, &mut new);
        assert_eq!(
            (changes.live, changes.fixed),
            (vec!["trusted-proxy"], vec!["proxy-protocol"])
        );
        assert!(!new.proxy_protocol);
    }

    #[test]
    fn origins() {
        for good in [
            "http://127.0.0.1",
            "https://push.example.com:8443",
            "http://[::1]:8080",
            "http://localhost",
        ] {
            assert!(valid_origin(good), "{good}");
        }
        for bad in [
            "",
            "127.0.0.1",
            "ftp://h",
            "http://",
            "http://h/",
            "http://h/path",
            "http://h:0",
            "http://h:x",
            "http://h\"",
            "http://[nope]",
            "http://u@h",
        ] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }

    #[test]
    fn lhttp_processors_and_the_broker_origin() {
        let cfg = serve(&[
            "--lhttp",
            "--lhttp-upstream",
            "http://127.0.0.1:8080/lhttp",
            "--lhttp-processor",
            "chat=http://127.0.0.1:8080/lhttp/chat",
            "--lhttp-processor",
            "auth=http://127.0.0.1:8080/lhttp?x=1",
            "--esb-origin",
            "https://push.example.com/",
        ])
        .unwrap();
        let commands: Vec<&str> = cfg
            .lhttp_processors
            .iter()
            .map(|p| p.command.as_str())
            .collect();
        assert_eq!(commands, ["chat", "auth"]);
        assert_eq!(cfg.esb_origin.as_deref(), Some("https://push.example.com"));
        for (args, why) in [
            (
                &[
                    "--lhttp-processor",
                    "chat=http://h/",
                    "--lhttp-processor",
                    "chat=http://h/x",
                ][..],
                "this command already has a processor",
            ),
            (
                &["--esb-origin", "https://h/path"][..],
                "expected an origin",
            ),
        ] {
            let err = serve(args).expect_err("should fail").to_string();
            assert!(err.contains(why), "{args:?}: {err}");
        }
        // Processors and the origin change on reload; the allow-list needs a restart.
        let mut new = cfg.clone();
        new.lhttp_processors.pop();
        new.esb_origin = None;
        let changes = Changes::between(&cfg, &mut new);
        assert_eq!(changes.live, ["esb-origin", "lhttp-processor"]);
        assert!(changes.fixed.is_empty());
    }
}
