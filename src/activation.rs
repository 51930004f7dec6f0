//! Listening sockets handed over by the service manager (systemd's socket activation): with
//! `LISTEN_PID` our pid and `LISTEN_FDS=n`, descriptors 3 to 3+n-1 are listening sockets.
//! Because the manager holds them across restarts, connections that arrive while msgbus
//! restarts wait in the backlog instead of being refused.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;

use log::warn;
use socket2::{Domain, Socket, Type};

use crate::listener::Listener;

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;
/// More than this many passed descriptors is taken for a mistake.
const MAX_FDS: RawFd = 1024;

/// One passed listening socket.
pub enum Inherited {
    Tcp(std::net::TcpListener, SocketAddr),
    /// With the path it is bound to, when it has one.
    Unix(std::os::unix::net::UnixListener, Option<PathBuf>),
}

impl Inherited {
    /// A listener of the reactor. A UNIX socket's file belongs to the manager, which keeps it
    /// across restarts: the listener has no path, so it does not remove the file at exit.
    pub fn into_listener(self, tls: bool) -> Listener {
        match self {
            Inherited::Tcp(socket, _) => Listener::Tcp {
                socket: mio::net::TcpListener::from_std(socket),
                tls,
            },
            Inherited::Unix(socket, _) => Listener::Unix {
                socket: mio::net::UnixListener::from_std(socket),
                path: PathBuf::new(),
            },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Inherited::Tcp(_, addr) => addr.to_string(),
            Inherited::Unix(_, Some(path)) => format!("unix:{}", path.display()),
            Inherited::Unix(_, None) => "unix:(unnamed)".to_string(),
        }
    }
}

/// The listening sockets passed to this process, made non-blocking and close-on-exec. The
/// variables are removed so that nothing started later takes them for its own. A passed
/// descriptor that is not a listening stream socket is named in the log and left alone.
pub fn take_inherited() -> Vec<Inherited> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let ours = pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
    let count = match fds.map(|n| n.trim().parse::<RawFd>()) {
        Some(Ok(n)) if ours && (0..=MAX_FDS).contains(&n) => n,
        Some(_) if ours => {
            warn!("LISTEN_FDS is not a number of descriptors; ignored");
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let mut inherited = Vec::new();
    for fd in FIRST_FD..FIRST_FD + count {
        match adopt(fd) {
            Ok(Some(socket)) => inherited.push(socket),
            Ok(None) => warn!("passed descriptor {fd} is not a listening stream socket; ignored"),
            Err(e) => warn!("passed descriptor {fd}: {e}; ignored"),
        }
    }
    inherited
}

fn adopt(fd: RawFd) -> io::Result<Option<Inherited>> {
    // SAFETY: fstat on a descriptor number only reads its metadata.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Ok(None);
    }
    // SAFETY: the manager passed this descriptor for this process to own; it is a socket.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let listening = socket.r#type()? == Type::STREAM && socket.is_listener()?;
    if !listening {
        std::mem::forget(socket); // not ours to close
        return Ok(None);
    }
    socket.set_cloexec(true)?;
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    Ok(Some(match socket.domain()? {
        Domain::UNIX => {
            let path = local.as_pathname().map(|p| p.to_path_buf());
            Inherited::Unix(socket.into(), path)
        }
        _ => match local.as_socket() {
            Some(addr) => Inherited::Tcp(socket.into(), addr),
            None => {
                std::mem::forget(socket);
                return Ok(None);
            }
        },
    }))
}
