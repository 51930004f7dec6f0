//! The sockets msgbus accepts on: TCP (plain or TLS) and UNIX-domain.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mio::event::Source;
use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Registry, Token};

use crate::config::TrustedProxies;
use crate::io::Stream;

/// TCP keepalive on accepted sockets: after this long without traffic the kernel probes the
/// peer, every `KEEPALIVE_INTERVAL`, and gives up after `KEEPALIVE_PROBES` unanswered probes.
/// A subscriber whose host vanished on a quiet stream (multipart, martd) is so found out within
/// about two minutes: the socket reports an error and the reactor closes it.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_PROBES: u32 = 6;

/// Who is on the other end of a connection, or (given by a trusted proxy) of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client; port 0 (no TCP port) when a proxy named the address alone.
    Tcp(SocketAddr),
    Unix,
}

impl Peer {
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(addr) => Some(addr.ip()),
            Peer::Unix => None,
        }
    }

    /// Whether this peer is one of the proxies `--trusted-proxy` names.
    pub fn is_trusted_proxy(self, trusted: &TrustedProxies) -> bool {
        match self {
            Peer::Tcp(addr) => trusted.trusts_ip(addr.ip()),
            Peer::Unix => trusted.unix,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) if addr.port() == 0 => addr.ip().fmt(f),
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

pub enum Listener {
    Tcp { socket: TcpListener, tls: bool },
    Unix { socket: UnixListener, path: PathBuf },
}

impl Listener {
    /// With `reuse_port`, several processes may bind the same address; the kernel spreads
    /// new connections among them.
    pub fn bind_tcp(addr: SocketAddr, tls: bool, reuse_port: bool) -> io::Result<Listener> {
        use socket2::{Domain, Socket as RawSocket, Type};
        let socket = RawSocket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        Ok(Listener::Tcp {
            socket: TcpListener::from_std(socket.into()),
            tls,
        })
    }

    /// Binds a UNIX-domain socket at `path` with `mode`. A stale socket file left by a previous
    /// run is replaced; any other file there is not.
    pub fn bind_unix(path: &Path, mode: u32) -> io::Result<Listener> {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let socket = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(Listener::Unix {
            socket,
            path: path.to_path_buf(),
        })
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Listener::Tcp { tls: true, .. })
    }

    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp { socket, .. } => {
                let (stream, addr) = socket.accept()?;
                let _ = stream.set_nodelay(true);
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(KEEPALIVE_IDLE)
                    .with_interval(KEEPALIVE_INTERVAL)
                    .with_retries(KEEPALIVE_PROBES);
                let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
                Ok((Stream::Tcp(stream), Peer::Tcp(addr)))
            }
            Listener::Unix { socket, .. } => {
                let (stream, _) = socket.accept()?;
                Ok((Stream::Unix(stream), Peer::Unix))
            }
        }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp { socket, .. } => socket.local_addr().ok(),
            Listener::Unix { .. } => None,
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listener::Tcp { socket, tls } => {
                let addr = socket.local_addr().map_err(|_| fmt::Error)?;
                if *tls {
                    write!(f, "{addr} (TLS)")
                } else {
                    addr.fmt(f)
                }
            }
            Listener::Unix { path, .. } => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Source for Listener {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Listener::Tcp { socket, .. } => socket.register(registry, token, interest),
            Listener::Unix { socket, .. } => socket.register(registry, token, interest),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Listener::Tcp { socket, .. } => socket.reregister(registry, token, interest),
            Listener::Unix { socket, .. } => socket.reregister(registry, token, interest),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp { socket, .. } => socket.deregister(registry),
            Listener::Unix { socket, .. } => socket.deregister(registry),
        }
    }
}
