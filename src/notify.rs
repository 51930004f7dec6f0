//! Telling the service manager how the server is doing (systemd's `sd_notify` protocol): one
//! datagram of `KEY=VALUE` lines to the UNIX socket named by `$NOTIFY_SOCKET` (a path, or an
//! abstract name written with a leading `@`). The socket is non-blocking: a manager that does
//! not read costs a lost notice, never a stalled loop.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use log::debug;

pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    /// How often to say `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when the manager asks.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier the environment asks for, if any.
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let to = match address(name.as_encoded_bytes()) {
            Ok(to) => to,
            Err(e) => {
                log::warn!("NOTIFY_SOCKET {name:?}: {e}");
                return None;
            }
        };
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| log::warn!("NOTIFY_SOCKET: {e}"))
            .ok()?;
        Some(Notifier {
            socket,
            to,
            watchdog: watchdog_interval(),
        })
    }

    /// Sends one notice; a failure is logged and otherwise ignored.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.to) {
            debug!("sd_notify {state:?}: {e}");
        }
    }

    /// Listening: the service is up.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// SIGHUP: reloading, with the instant the manager needs to order the notices.
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// `$NOTIFY_SOCKET` as an address: `/path` or `@abstract`.
fn address(name: &[u8]) -> io::Result<SocketAddr> {
    match name {
        [b'@', rest @ ..] => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(rest)
        }
        [b'/', ..] => {
            use std::os::unix::ffi::OsStrExt;
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an @abstract name",
        )),
    }
}

/// Half of `$WATCHDOG_USEC`, when it is set for this process (`$WATCHDOG_PID`, if set, must
/// be ours).
fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// CLOCK_MONOTONIC in microseconds, the clock the manager compares notices by.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the struct passed.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(address(b"/run/systemd/notify").is_ok());
        assert!(address(b"@/org/freedesktop/systemd1/notify").is_ok());
        assert!(address(b"relative").is_err());
        assert!(address(b"").is_err());
    }

    #[test]
    fn a_notice_arrives_as_one_datagram() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("msgbus-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            to: address(format!("@{name}").as_bytes()).unwrap(),
            watchdog: None,
        };
        notifier.reloading();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
    }
}
