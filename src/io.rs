//! The byte pipe under a connection: a non-blocking socket with one read and one vectored write.
//! Protocol code never sees it; TLS will slot in here behind the same three calls.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

pub struct Socket {
    stream: TcpStream,
}

impl Socket {
    pub fn new(stream: TcpStream) -> Socket {
        Socket { stream }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }

    /// One `writev` over the given slices.
    pub fn writev(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(slices)
    }

    /// Half-closes, so the peer reads everything queued and then end of stream.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    pub fn source(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}
