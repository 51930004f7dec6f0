//! `msgbus pub` and `msgbus sub`: small blocking clients for scripts and shells, replacing the
//! original's msgsend and msgdump. They speak HTTP/1.x over TCP or, for `https://`, over rustls
//! with the ring provider the server uses; the trust store is `--cacert FILE` or the system's CA
//! bundle (a PEM file), so no root-store crate is needed.
//!
//! Their exit statuses are part of their interface (scripts branch on them) and are listed in
//! the man page's EXIT STATUS and in each tool's `--help`.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};

use crate::http::{base64, static_files};
use crate::transport::multipart::PartDecoder;

/// The server accepted the message (`pub`), or the stream ended as asked (`sub`).
pub const EXIT_OK: u8 = 0;
/// The server answered with a refusal: a status other than 2xx.
pub const EXIT_REFUSED: u8 = 1;
/// A bad command line, URL or token, or a local file that cannot be read (FILE, `--cacert`)
/// or written (standard output); the server uses 2 for its bad command lines too.
pub const EXIT_USAGE: u8 = 2;
/// No usable connection: the name did not resolve, the connection was refused or lost, TLS
/// failed (the certificate was not trusted), no answer in time, or an answer that is not HTTP.
pub const EXIT_CONNECTION: u8 = 3;
/// `sub -w SECS`: nothing arrived for SECS once the stream was open.
pub const EXIT_QUIET: u8 = 4;

const PUB_HELP: &str = "\
usage: msgbus pub [-v] [-t TYPE] [-u USER[:PASS]] [--token TOKEN] [--cacert FILE] [-k] URL [FILE]
Publishes FILE (or standard input) to URL (http:// or https://) and prints the message's id.
  -t TYPE          the message's Content-Type (default: from FILE's name; text/plain for stdin)
  -u USER[:PASS]   HTTP Basic credentials: PASS is the server's -s secret, USER is shown as From
  --token TOKEN    a signed token for a server with --jwt-secret, sent as Authorization: Bearer
  --cacert FILE    trust the CA certificates in FILE (PEM) for https:// instead of the system's
  -k, --insecure   https:// without checking the server's certificate (tests only)
  -v               write the server's answer to standard error
  -h, --help       this text
Exit status: 0 accepted; 1 refused by the server (4xx, 5xx); 2 bad command line or file;
3 no connection, TLS failure or no answer within 30 s.
";

const SUB_HELP: &str = "\
usage: msgbus sub [-v] [-n COUNT] [-w SECS] [-u USER[:PASS]] [--token TOKEN] [--cacert FILE] [-k] URL
Subscribes to URL (http:// or https://) and writes each message's body to standard output.
  -n COUNT         exit after COUNT messages
  -w SECS          give up when nothing arrives for SECS (also the wait for the server's answer)
  -u USER[:PASS]   HTTP Basic credentials: PASS is the server's -s secret
  --token TOKEN    a signed token for a server with --jwt-secret, sent as Authorization: Bearer
  --cacert FILE    trust the CA certificates in FILE (PEM) for https:// instead of the system's
  -k, --insecure   https:// without checking the server's certificate (tests only)
  -v               write each message's part headers to standard error
  -h, --help       this text
Exit status: 0 COUNT messages received, or the stream ended; 1 refused by the server (4xx, 5xx);
2 bad command line or file; 3 no connection, TLS failure, no answer in time, or the stream ended
before COUNT messages; 4 nothing arrived for SECS (-w).
";

/// How long either client waits to connect and for the server's answer (for `sub` without
/// `-w`, its response head).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest part `msgbus sub` accepts.
const MAX_PART: usize = 64 * 1024 * 1024;
/// Largest response head, and largest answer body kept (a refusal's reason, a JSON reply).
const MAX_HEAD: usize = 64 * 1024;
const MAX_ANSWER_BODY: usize = 64 * 1024;
/// Where the system keeps its CA bundle (Debian and Ubuntu, Fedora and RHEL, Alpine and the
/// BSDs), tried in order after `$SSL_CERT_FILE`.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Pub,
    Sub,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Pub => "pub",
            Tool::Sub => "sub",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Tool::Pub => PUB_HELP,
            Tool::Sub => SUB_HELP,
        }
    }

    fn usage_line(self) -> &'static str {
        self.help().lines().next().unwrap_or("")
    }
}

/// Why a tool stopped short, each with its exit status.
#[derive(Debug)]
enum Failure {
    /// EXIT_REFUSED: the server's status line and reason.
    Refused(String),
    /// EXIT_USAGE: a bad command line, followed by the usage line.
    Usage(String),
    /// EXIT_USAGE: a local file that cannot be read or written.
    Local(String),
    /// EXIT_CONNECTION.
    Connection(String),
    /// EXIT_QUIET.
    Quiet(String),
}

impl Failure {
    fn status(&self) -> u8 {
        match self {
            Failure::Refused(_) => EXIT_REFUSED,
            Failure::Usage(_) | Failure::Local(_) => EXIT_USAGE,
            Failure::Connection(_) => EXIT_CONNECTION,
            Failure::Quiet(_) => EXIT_QUIET,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(why)
            | Failure::Usage(why)
            | Failure::Local(why)
            | Failure::Connection(why)
            | Failure::Quiet(why) => f.write_str(why),
        }
    }
}

/// An `http[s]://[user[:pass]@]host[:port]/path` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub credentials: Option<String>,
}

impl Url {
    /// The Host header's value: IPv6 addresses in brackets, the port only when not the default.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

pub fn parse_url(url: &str) -> Result<Url, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!("{url}: only http:// and https:// URLs"));
    };
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("{url:?}: spaces or control characters in the URL"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo.to_string()), host),
        None => (None, authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            (host, port.parse().map_err(|_| format!("{url}: bad port"))?)
        }
        _ => (host_port, if tls { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(Url {
        tls,
        host: host.to_string(),
        port,
        path: path.to_string(),
        credentials,
    })
}

struct Options {
    help: bool,
    content_type: Option<String>,
    credentials: Option<String>,
    token: Option<String>,
    cacert: Option<PathBuf>,
    insecure: bool,
    count: Option<u64>,
    /// `-w SECS`: give up when nothing arrives for this long (`sub` only; default: wait for
    /// messages as long as the stream stays open, once its head has come).
    wait: Option<Duration>,
    verbose: bool,
    positional: Vec<String>,
}

fn parse_options(tool: Tool, args: &[OsString]) -> Result<Options, String> {
    use lexopt::prelude::*;
    let mut opts = Options {
        help: false,
        content_type: None,
        credentials: None,
        token: None,
        cacert: None,
        insecure: false,
        count: None,
        wait: None,
        verbose: false,
        positional: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_args(args.iter().cloned());
    let text = |v: OsString| v.into_string().map_err(|v| format!("{v:?} is not UTF-8"));
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => opts.help = true,
            Short('t') if tool == Tool::Pub => {
                let content_type = text(value(&mut parser)?)?;
                if !is_clean_line(&content_type) {
                    return Err("-t: control characters in the type".into());
                }
                opts.content_type = Some(content_type);
            }
            Short('u') => opts.credentials = Some(text(value(&mut parser)?)?),
            Long("token") => {
                let token = text(value(&mut parser)?)?;
                if token.is_empty() || token.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err("--token: empty, or holds spaces or control characters".into());
                }
                opts.token = Some(token);
            }
            Long("cacert") => opts.cacert = Some(PathBuf::from(value(&mut parser)?)),
            Short('k') | Long("insecure") => opts.insecure = true,
            Short('n') if tool == Tool::Sub => {
                let n = text(value(&mut parser)?)?;
                opts.count = Some(n.parse().map_err(|_| format!("-n {n}: not a number"))?);
            }
            Short('w') if tool == Tool::Sub => {
                let secs = text(value(&mut parser)?)?;
                opts.wait = match secs.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s)),
                    _ => return Err(format!("-w {secs}: not a positive number of seconds")),
                };
            }
            Short('v') => opts.verbose = true,
            Value(v) => opts.positional.push(text(v)?),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    Ok(opts)
}

fn value(parser: &mut lexopt::Parser) -> Result<OsString, String> {
    parser.value().map_err(|e| e.to_string())
}

fn is_clean_line(value: &str) -> bool {
    !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// `msgbus pub URL [FILE]`: publishes FILE (or standard input) to URL, prints the message's id.
pub fn publish_main(args: &[OsString]) -> ExitCode {
    finish(Tool::Pub, publish(args))
}

/// `msgbus sub URL`: prints each message's body as it arrives.
pub fn subscribe_main(args: &[OsString]) -> ExitCode {
    finish(Tool::Sub, subscribe(args))
}

fn finish(tool: Tool, outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => {
            eprintln!("msgbus {}: {failure}", tool.name());
            if let Failure::Usage(_) = failure {
                eprintln!("{}", tool.usage_line());
            }
            ExitCode::from(failure.status())
        }
    }
}

/// Options and the URL; `Ok(None)` when `--help` was asked for and printed.
fn command_line(tool: Tool, args: &[OsString]) -> Result<Option<(Options, Url)>, Failure> {
    let opts = parse_options(tool, args).map_err(Failure::Usage)?;
    if opts.help {
        print!("{}", tool.help());
        return Ok(None);
    }
    let url = match (tool, opts.positional.as_slice()) {
        (Tool::Pub, [url] | [url, _]) | (Tool::Sub, [url]) => url,
        (_, []) => return Err(Failure::Usage("no URL".into())),
        (_, [_, extra @ ..]) => {
            return Err(Failure::Usage(format!(
                "unexpected argument {:?}",
                extra[0]
            )))
        }
    };
    let url = parse_url(url).map_err(Failure::Usage)?;
    Ok(Some((opts, url)))
}

fn publish(args: &[OsString]) -> Result<(), Failure> {
    let Some((opts, url)) = command_line(Tool::Pub, args)? else {
        return Ok(());
    };
    let (body, guessed_type) = match opts.positional.get(1) {
        Some(path) => {
            let body = std::fs::read(path).map_err(|e| Failure::Local(format!("{path}: {e}")))?;
            (body, static_files::content_type_for(Path::new(path)))
        }
        None => {
            let mut body = Vec::new();
            io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| Failure::Local(format!("standard input: {e}")))?;
            (body, "text/plain")
        }
    };
    let content_type = opts.content_type.as_deref().unwrap_or(guessed_type);
    let mut head = request_head("POST", &url, "1.1", &opts);
    head += &format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = connect(&url, &opts)?;
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(&body))
        .and_then(|_| stream.flush())
        .map_err(|e| lost(&url, &e))?;
    let mut answer = read_head(&mut stream, &url, ANSWER_TIMEOUT)?;
    read_body(&mut stream, &mut answer, &url)?;
    if opts.verbose {
        eprint!("{}", String::from_utf8_lossy(&answer.raw_head));
        eprintln!("{}", String::from_utf8_lossy(&answer.body));
    }
    if !(200..300).contains(&answer.status) {
        return Err(answer.refusal());
    }
    if let Some(id) = answer.header("Msgbus-Id") {
        let mut stdout = io::stdout().lock();
        match writeln!(stdout, "{id}").and_then(|_| stdout.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                return Err(Failure::Local(format!("standard output: {e}")))
            }
            _ => {}
        }
    }
    Ok(())
}

fn subscribe(args: &[OsString]) -> Result<(), Failure> {
    let Some((opts, url)) = command_line(Tool::Sub, args)? else {
        return Ok(());
    };
    // HTTP/1.0: every part carries Content-Length, so parts are read back exactly.
    let head = request_head("GET", &url, "1.0", &opts) + "\r\n";
    let mut stream = connect(&url, &opts)?;
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.flush())
        .map_err(|e| lost(&url, &e))?;
    // A server that accepts and never answers must not hold the client forever.
    let answer = read_head(&mut stream, &url, opts.wait.unwrap_or(ANSWER_TIMEOUT))?;
    if answer.status != 200 {
        let mut answer = answer;
        read_body(&mut stream, &mut answer, &url)?;
        return Err(answer.refusal());
    }
    let mut decoder = PartDecoder::new(MAX_PART);
    decoder.push(&answer.body);
    stream
        .set_read_timeout(opts.wait)
        .map_err(|e| lost(&url, &e))?;
    let mut stdout = io::stdout().lock();
    let mut buf = vec![0; 64 * 1024];
    let mut received = 0u64;
    loop {
        while let Some(part) = decoder
            .next_part()
            .map_err(|e| Failure::Connection(format!("{}: {e}", url.authority())))?
        {
            if opts.count.is_some_and(|n| received >= n) {
                break;
            }
            if opts.verbose {
                for (name, value) in &part.headers {
                    eprintln!("{name}: {value}");
                }
            }
            match stdout.write_all(&part.body).and_then(|_| stdout.flush()) {
                Ok(()) => {}
                // The reader has what it wanted (`msgbus sub URL | head -1`).
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(Failure::Local(format!("standard output: {e}"))),
            }
            received += 1;
        }
        if opts.count.is_some_and(|n| received >= n) {
            return Ok(());
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                let secs = opts.wait.unwrap_or_default().as_secs_f64();
                return Err(Failure::Quiet(format!("nothing received for {secs:.1} s")));
            }
            // A TLS peer that closes without close_notify ends the stream all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(lost(&url, &e)),
        };
        if n == 0 {
            return match opts.count {
                Some(count) => Err(Failure::Connection(format!(
                    "{}: the stream ended after {received} of {count} messages",
                    url.authority()
                ))),
                None => Ok(()),
            };
        }
        decoder.push(&buf[..n]);
    }
}

/// The request line and headers up to, not including, the blank line. Basic credentials
/// (`-u`, or the URL's) go in `Authorization`; a token too when there are none, else in
/// `?token=`, which the server reads as well.
fn request_head(method: &str, url: &Url, version: &str, opts: &Options) -> String {
    let basic = opts.credentials.as_deref().or(url.credentials.as_deref());
    let mut target = url.path.clone();
    if let (Some(_), Some(token)) = (basic, &opts.token) {
        target += if target.contains('?') { "&" } else { "?" };
        target += &percent_encode_query(token);
    }
    let mut head = format!(
        "{method} {target} HTTP/{version}\r\nHost: {}\r\n",
        url.authority()
    );
    match (basic, &opts.token) {
        (Some(credentials), _) => {
            let with_colon = if credentials.contains(':') {
                credentials.to_string()
            } else {
                format!("{credentials}:")
            };
            head += &format!(
                "Authorization: Basic {}\r\n",
                base64::encode(with_colon.as_bytes())
            );
        }
        (None, Some(token)) => head += &format!("Authorization: Bearer {token}\r\n"),
        (None, None) => {}
    }
    head
}

/// `token=VALUE`, VALUE percent-encoded but for the unreserved characters (a JWT has only those).
fn percent_encode_query(token: &str) -> String {
    let mut out = String::from("token=");
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

/// The connection to the server: a socket, or TLS over one.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(sock) => sock,
            Stream::Tls(tls) => &tls.sock,
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_read_timeout(timeout)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(sock) => sock.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(sock) => sock.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(sock) => sock.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn lost(url: &Url, e: &io::Error) -> Failure {
    Failure::Connection(format!("{}: {e}", url.authority()))
}

/// Connects within ANSWER_TIMEOUT to the first of the host's addresses that answers, and for
/// `https://` completes the TLS handshake, so a certificate problem is reported as such.
fn connect(url: &Url, opts: &Options) -> Result<Stream, Failure> {
    // Built first: a bad --cacert is the user's to fix, whether or not the server is up.
    let tls = if url.tls {
        Some(tls_config(opts)?)
    } else {
        None
    };
    let place = url.authority();
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Connection(format!("{place}: {e}")))?
        .collect();
    let mut last_error = None;
    let mut sock = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, ANSWER_TIMEOUT) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(mut sock) = sock else {
        let why = last_error.map_or("no address".to_string(), |e| e.to_string());
        return Err(Failure::Connection(format!("{place}: {why}")));
    };
    sock.set_nodelay(true)
        .and_then(|_| sock.set_read_timeout(Some(ANSWER_TIMEOUT)))
        .and_then(|_| sock.set_write_timeout(Some(ANSWER_TIMEOUT)))
        .map_err(|e| Failure::Connection(format!("{place}: {e}")))?;
    let Some(config) = tls else {
        return Ok(Stream::Plain(sock));
    };
    let name = ServerName::try_from(url.host.clone())
        .map_err(|_| Failure::Usage(format!("{}: not a name TLS can check", url.host)))?;
    let mut conn = ClientConnection::new(config, name)
        .map_err(|e| Failure::Connection(format!("{place}: TLS: {e}")))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| {
            let why = match e.kind() {
                _ if is_timeout(&e) => "no answer in time".to_string(),
                io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
                _ => e.to_string(),
            };
            Failure::Connection(format!("{place}: TLS: {why}"))
        })?;
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, sock))))
}

/// TLS 1.2 and 1.3 with the ring provider, trusting `--cacert` or the system's CA bundle,
/// or, with `--insecure`, any certificate whose key signs the handshake.
fn tls_config(opts: &Options) -> Result<Arc<ClientConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Connection(format!("TLS: {e}")))?;
    let mut config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(trust_roots(opts.cacert.as_deref())?)
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CA certificates of `--cacert`, else of `$SSL_CERT_FILE` or the first system bundle found.
fn trust_roots(cacert: Option<&Path>) -> Result<RootCertStore, Failure> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let path = match cacert {
        Some(path) => path.to_path_buf(),
        None => from_env
            .into_iter()
            .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Failure::Local(format!(
                    "no CA bundle found (tried $SSL_CERT_FILE, {}): give --cacert FILE",
                    SYSTEM_CA_BUNDLES.join(", ")
                ))
            })?,
    };
    let bad = |why: String| Failure::Local(format!("{}: {why}", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("no usable CA certificate in the file".into()));
    }
    Ok(roots)
}

/// `--insecure`: any certificate for any name, though the server must still prove it holds
/// the certificate's key, as with curl's `-k`.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server's answer: its head, and what of its body has been read.
struct Answer {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    raw_head: Vec<u8>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// EXIT_REFUSED with the status and the first line of the server's reason.
    fn refusal(&self) -> Failure {
        let body = String::from_utf8_lossy(&self.body);
        let why = body.lines().next().unwrap_or("").trim();
        let mut line = format!("{} {}", self.status, self.reason);
        if !why.is_empty() {
            line += &format!(": {why}");
        }
        Failure::Refused(line)
    }
}

/// Reads and parses the response head, waiting at most `timeout` for each read.
fn read_head(stream: &mut Stream, url: &Url, timeout: Duration) -> Result<Answer, Failure> {
    let place = url.authority();
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| lost(url, &e))?;
    let mut raw = Vec::new();
    let mut buf = [0; 16 * 1024];
    let end = loop {
        if let Some(end) = memchr::memmem::find(&raw, b"\r\n\r\n") {
            break end + 4;
        }
        if raw.len() > MAX_HEAD {
            return Err(Failure::Connection(format!(
                "{place}: answer head too long"
            )));
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                let secs = timeout.as_secs_f64();
                return Err(Failure::Connection(format!("no answer within {secs:.1} s")));
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(lost(url, &e)),
        };
        if n == 0 {
            return Err(Failure::Connection(format!(
                "{place}: the connection closed before an answer"
            )));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let not_http = |why: &dyn fmt::Display| {
        Failure::Connection(format!("{place}: not an HTTP answer ({why})"))
    };
    match response.parse(&raw[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(not_http(&"incomplete head")),
        Err(e) => return Err(not_http(&e)),
    }
    let answer = Answer {
        status: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_string(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(h.value).trim().to_string();
                (h.name.to_string(), value)
            })
            .collect(),
        raw_head: raw[..end].to_vec(),
        body: raw[end..].to_vec(),
    };
    Ok(answer)
}

/// Reads the rest of a short answer's body: Content-Length bytes, or to the close; at most
/// MAX_ANSWER_BODY are kept.
fn read_body(stream: &mut Stream, answer: &mut Answer, url: &Url) -> Result<(), Failure> {
    let length = answer
        .header("Content-Length")
        .and_then(|v| v.parse::<usize>().ok());
    let want = length.unwrap_or(usize::MAX).min(MAX_ANSWER_BODY);
    let mut buf = [0; 16 * 1024];
    while answer.body.len() < want {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) if is_timeout(&e) => {
                return Err(Failure::Connection(format!(
                    "{}: the answer's body did not come",
                    url.authority()
                )))
            }
            Err(e) => return Err(lost(url, &e)),
        };
        if n == 0 {
            break;
        }
        answer.body.extend_from_slice(&buf[..n]);
    }
    answer.body.truncate(want);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        type Parts<'a> = (bool, &'a str, u16, &'a str, Option<&'a str>);
        let cases: &[(&str, Result<Parts, ()>)] = &[
            (
                "http://127.0.0.1:8888/msgbus/foo",
                Ok((false, "127.0.0.1", 8888, "/msgbus/foo", None)),
            ),
            (
                "http://localhost/msgbus/foo?type=text/*",
                Ok((false, "localhost", 80, "/msgbus/foo?type=text/*", None)),
            ),
            (
                "http://bob:pw@[::1]:9000",
                Ok((false, "::1", 9000, "/", Some("bob:pw"))),
            ),
            ("https://x/", Ok((true, "x", 443, "/", None))),
            ("https://x:8443/a", Ok((true, "x", 8443, "/a", None))),
            ("ftp://x/", Err(())),
            ("http://x:port/", Err(())),
            ("http:///path", Err(())),
            ("http://x/a b", Err(())),
            ("http://x/a\r\nX: y", Err(())),
        ];
        for (url, want) in cases {
            let got = parse_url(url)
                .map(|u| (u.tls, u.host, u.port, u.path, u.credentials))
                .map_err(|_| ());
            let want = want.map(|(tls, h, p, path, c)| {
                (tls, h.to_string(), p, path.to_string(), c.map(String::from))
            });
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn host_header() {
        let cases = [
            ("http://x/", "x"),
            ("http://x:8888/", "x:8888"),
            ("https://x/", "x"),
            ("https://x:80/", "x:80"),
            ("http://[::1]:9000/", "[::1]:9000"),
            ("http://[::1]/", "[::1]"),
        ];
        for (url, want) in cases {
            assert_eq!(parse_url(url).unwrap().authority(), want, "{url}");
        }
    }

    #[test]
    fn credentials_and_tokens() {
        let opts = |credentials: Option<&str>, token: Option<&str>| Options {
            help: false,
            content_type: None,
            credentials: credentials.map(String::from),
            token: token.map(String::from),
            cacert: None,
            insecure: false,
            count: None,
            wait: None,
            verbose: false,
            positional: Vec::new(),
        };
        let url = parse_url("http://h/msgbus/a").unwrap();
        let with_query = parse_url("http://h/msgbus/a?type=x").unwrap();
        let cases = [
            (&url, None, None, "GET /msgbus/a HTTP/1.0\r\nHost: h\r\n"),
            (
                &url,
                Some("bob"),
                None,
                "GET /msgbus/a HTTP/1.0\r\nHost: h\r\nAuthorization: Basic Ym9iOg==\r\n",
            ),
            (
                &url,
                None,
                Some("t.k-n"),
                "GET /msgbus/a HTTP/1.0\r\nHost: h\r\nAuthorization: Bearer t.k-n\r\n",
            ),
            (
                &with_query,
                Some("bob:pw"),
                Some("t.k+n"),
                "GET /msgbus/a?type=x&token=t.k%2Bn HTTP/1.0\r\nHost: h\r\n\
                 Authorization: Basic Ym9iOnB3\r\n",
            ),
        ];
        for (url, credentials, token, want) in cases {
            let head = request_head("GET", url, "1.0", &opts(credentials, token));
            assert_eq!(head, want, "{credentials:?} {token:?}");
        }
    }
}
