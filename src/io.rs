//! The byte pipe under a connection: a non-blocking TCP or UNIX socket, optionally wrapped in
//! TLS, behind one read and one vectored write. Protocol code never sees it.
//!
//! With TLS, `writev` hands the plaintext slices to rustls in one vectored write and pushes the
//! records it makes to the socket; what the socket does not take yet stays in rustls's bounded
//! buffer (`has_pending_output`) and goes out when the socket is writable again.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use rustls::{ServerConfig, ServerConnection};

/// Plaintext rustls may hold for one connection before `writev` reports WouldBlock.
const TLS_BUFFER_LIMIT: usize = 256 * 1024;

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Writes `answer` if the socket takes it at once, half-closes, and drops the socket:
    /// a refusal that costs no buffer and no slab entry. Whatever the client already sent is
    /// read and discarded first (a little), so the close is a FIN rather than a reset that
    /// could destroy the answer before the client reads it.
    pub fn answer_and_close(mut self, answer: &[u8]) {
        let _ = self.write(answer);
        let _ = match &self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
        let mut discard = [0u8; 2048];
        let _ = self.read(&mut discard);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interest),
            Stream::Unix(s) => s.register(registry, token, interest),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interest),
            Stream::Unix(s) => s.reregister(registry, token, interest),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}

pub struct Socket {
    stream: Stream,
    tls: Option<Box<ServerConnection>>,
}

impl Socket {
    pub fn new(stream: Stream) -> Socket {
        Socket { stream, tls: None }
    }

    pub fn with_tls(stream: Stream, config: Arc<ServerConfig>) -> io::Result<Socket> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(Socket {
            stream,
            tls: Some(Box::new(tls)),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Caps the kernel's send buffer (SO_SNDBUF), which also turns off Linux's autotuning of it:
    /// what a subscriber who does not read can make the kernel hold, and copy at once.
    pub fn cap_send_buffer(&self, bytes: usize) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => socket2::SockRef::from(s).set_send_buffer_size(bytes),
            Stream::Unix(s) => socket2::SockRef::from(s).set_send_buffer_size(bytes),
        }
    }

    /// Reads plaintext. Ok(0) is the end of the stream; WouldBlock means nothing more now.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.stream.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: the end of the stream all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if tls.read_tls(&mut self.stream)? == 0 {
                return Ok(0);
            }
            if let Err(e) = tls.process_new_packets() {
                // Send the alert rustls queued, then give up on the connection.
                let _ = tls.write_tls(&mut self.stream);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Handshake messages (and key updates) answer what was just read.
            pump(tls, &mut self.stream)?;
        }
    }

    /// One vectored write: straight to the socket, or into the TLS writer and out.
    pub fn writev(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.stream.write_vectored(slices);
        };
        pump(tls, &mut self.stream)?;
        let accepted = tls.writer().write_vectored(slices)?;
        pump(tls, &mut self.stream)?;
        if accepted == 0 && slices.iter().any(|s| !s.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(accepted)
    }

    /// TLS records made but not yet taken by the socket.
    pub fn has_pending_output(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Pushes pending TLS records; Ok(true) when none are left.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            None => Ok(true),
            Some(tls) => {
                pump(tls, &mut self.stream)?;
                Ok(!tls.wants_write())
            }
        }
    }

    /// Half-closes, so the peer reads everything queued and then end of stream (after a TLS
    /// close_notify).
    pub fn shutdown_write(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = pump(tls, &mut self.stream);
        }
        let _ = match &self.stream {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    pub fn source(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

/// Writes TLS records to the socket until none are left or it would block.
fn pump(tls: &mut ServerConnection, stream: &mut Stream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
