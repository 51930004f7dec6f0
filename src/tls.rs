//! The TLS server configuration: certificates and key from PEM files, TLS 1.2 and 1.3 with the
//! ring provider, ALPN `http/1.1`. Rebuilt on SIGHUP; connections keep the one they started with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

#[derive(Debug)]
pub struct TlsError {
    pub file: PathBuf,
    pub why: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.why)
    }
}

impl std::error::Error for TlsError {}

/// Reads the certificate chain and the key (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1).
/// With `http2`, ALPN offers `h2` first, then `http/1.1`.
pub fn load(cert_file: &Path, key_file: &Path, http2: bool) -> Result<Arc<ServerConfig>, TlsError> {
    let error = |file: &Path, why: String| TlsError {
        file: file.to_path_buf(),
        why,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| error(cert_file, pem_reason(&e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(cert_file, pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(error(cert_file, "no certificate in the file".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|e| error(key_file, pem_reason(&e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| error(cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| error(key_file, format!("does not go with the certificate: {e}")))?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in the file".into(),
        other => format!("bad PEM: {other:?}"),
    }
}
