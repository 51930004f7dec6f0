//! Signals as readable events in the reactor: the handled signals are blocked and delivered
//! through a signalfd registered with the poll, so no handler runs in the middle of a turn.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// Signals the reactor acts on.
const HANDLED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM, with its name.
    Terminate(&'static str),
    /// SIGHUP: re-read certificates and key files.
    Reload,
    /// SIGUSR1: reopen the log file (after rotation).
    ReopenLog,
    /// Any other handled signal, by number.
    Other(i32),
}

pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Blocks the handled signals for this thread and opens a signalfd for them. SIGPIPE is
    /// ignored: a subscriber that vanishes shows up as a write error, not a dead server.
    pub fn new() -> io::Result<Signals> {
        // SAFETY: plain libc calls on a zeroed sigset_t owned by this frame; the fd returned by
        // signalfd is checked and then owned by OwnedFd.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut mask);
            for signal in HANDLED {
                libc::sigaddset(&mut mask, signal);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &mask, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// The signals that arrived since the last call.
    pub fn drain(&mut self) -> Vec<Signal> {
        let mut got = Vec::new();
        loop {
            // SAFETY: reading whole signalfd_siginfo records into a zeroed one.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    &mut info as *mut _ as *mut libc::c_void,
                    size,
                )
            };
            if n != size as isize {
                return got;
            }
            got.push(match info.ssi_signo as libc::c_int {
                libc::SIGINT => Signal::Terminate("SIGINT"),
                libc::SIGTERM => Signal::Terminate("SIGTERM"),
                libc::SIGHUP => Signal::Reload,
                libc::SIGUSR1 => Signal::ReopenLog,
                other => Signal::Other(other),
            });
        }
    }
}

impl Source for Signals {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).deregister(registry)
    }
}
