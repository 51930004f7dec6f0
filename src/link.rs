//! The socket of a connection msgbus makes to a broker (NATS, AMQP), plain or TLS, behind `Read`
//! and `Write`: TLS as a pipe in the manner of rustls's mio example (`read_tls`,
//! `process_new_packets`, `write_tls`), never blocking. NATS starts in plain text (the server's
//! INFO) and the client upgrades after it; `amqps://` upgrades before the first byte.

use std::io::{self, ErrorKind, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// Where the system keeps its CA bundle, tried in order after `$SSL_CERT_FILE`.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

pub struct Link {
    pub sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

impl Link {
    pub fn plain(sock: TcpStream) -> Link {
        Link { sock, tls: None }
    }

    /// Starts TLS with the server `host` (a name or an IP address): what is written from now
    /// on goes through it, sent once the handshake is done.
    pub fn upgrade(&mut self, config: Arc<ClientConfig>, host: &str) -> Result<(), String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("{host} is not a name TLS can check"))?;
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        self.tls = Some(Box::new(conn));
        Ok(())
    }

    /// Sends what TLS has ready, until the socket would block.
    fn flush_tls(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// How a bounded read of a link ended.
#[derive(Debug)]
pub enum ReadEnd {
    /// Nothing more to read now (or the connect is still under way).
    Drained,
    /// The cap was reached with more perhaps waiting: read again next turn.
    Capped,
    /// The broker closed the connection.
    Closed,
    Failed(io::Error),
}

impl Link {
    /// Reads into `input` until the socket would block, `cap` bytes have come, or the stream
    /// ends; also says how many bytes came.
    pub fn read_into(&mut self, input: &mut Vec<u8>, cap: usize) -> (ReadEnd, usize) {
        let mut buf = [0u8; 64 * 1024];
        let mut taken = 0;
        loop {
            if taken >= cap {
                return (ReadEnd::Capped, taken);
            }
            match self.read(&mut buf) {
                Ok(0) => return (ReadEnd::Closed, taken),
                Ok(n) => {
                    taken += n;
                    input.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => {
                    return (ReadEnd::Drained, taken)
                }
                Err(e) => return (ReadEnd::Failed(e), taken),
            }
        }
    }

    /// Writes what the socket takes of `output` (taking it out), after what TLS has to send;
    /// a socket that would block, or is still connecting, is not an error.
    pub fn write_from(&mut self, output: &mut Vec<u8>) -> io::Result<()> {
        let result = self.flush_tls().and_then(|()| {
            while !output.is_empty() {
                match self.write(output) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        output.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        match result {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => Ok(()),
            other => other,
        }
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.sock.read(buf);
        }
        loop {
            let tls = self.tls.as_mut().expect("checked above");
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            tls.process_new_packets()
                .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
            // Handshake messages and alerts go out as they come.
            self.flush_tls()?;
        }
    }
}

impl Write for Link {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.sock.write(data);
        };
        let n = tls.writer().write(data)?;
        self.flush_tls()?;
        if n == 0 && !data.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}

/// TLS 1.2 and 1.3 with the ring provider, trusting the CA certificates of `$SSL_CERT_FILE` or
/// of the first system bundle found. Made at start-up (a file read, once); `what` names the
/// connection in errors ("TLS to NATS", "amqps").
pub fn client_config(what: &str) -> Result<Arc<ClientConfig>, String> {
    let path = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "{what}: no CA bundle found (tried $SSL_CERT_FILE, {})",
                SYSTEM_CA_BUNDLES.join(", ")
            )
        })?;
    let bad = |why: String| format!("{what}: {}: {why}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .map_err(|e| bad(format!("{e:?}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("{e:?}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("no usable CA certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{what}: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
