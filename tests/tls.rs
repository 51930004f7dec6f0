//! HTTPS: a real rustls client against certificates the test makes (ECDSA, Ed25519, RSA),
//! every transport over TLS, ALPN, large messages through the TLS writer, bad files at start.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use common::*;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

struct Files {
    dir: PathBuf,
    cert_der: CertificateDer<'static>,
}

impl Files {
    fn cert(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msgbus-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for 127.0.0.1 and localhost with a key of `algorithm`.
fn make_cert(name: &str, algorithm: &'static rcgen::SignatureAlgorithm) -> Files {
    let dir = scratch_dir(name);
    let key = rcgen::KeyPair::generate_for(algorithm).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    Files {
        dir,
        cert_der: cert.der().clone(),
    }
}

/// RSA, which rcgen cannot generate with ring: made by the openssl command.
fn make_rsa_cert() -> Files {
    let dir = scratch_dir("rsa");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed to make an RSA certificate");
    assert!(status.success());
    let pem = std::fs::read(dir.join("cert.pem")).unwrap();
    use rustls::pki_types::pem::PemObject;
    let cert_der = CertificateDer::from_pem_slice(&pem).unwrap();
    Files { dir, cert_der }
}

fn start(files: &Files) -> Server {
    Server::start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &files.cert(),
        "--tls-key",
        &files.key(),
    ])
}

fn connect(server: &Server, files: &Files) -> TlsStream {
    let mut roots = RootCertStore::empty();
    roots.add(files.cert_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(server.tls_addr.expect("a TLS listener")).unwrap();
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    StreamOwned::new(conn, sock)
}

fn read_n(stream: &mut TlsStream, n: usize) -> String {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn every_key_type_serves_a_subscription_over_tls() {
    let cases = [
        ("ecdsa", Some(&rcgen::PKCS_ECDSA_P256_SHA256)),
        ("ed25519", Some(&rcgen::PKCS_ED25519)),
        ("rsa", None),
    ];
    for (name, algorithm) in cases {
        let files = match algorithm {
            Some(algorithm) => make_cert(name, algorithm),
            None => make_rsa_cert(),
        };
        let server = start(&files);
        let mut sub = connect(&server, &files);
        sub.write_all(b"GET /msgbus/secure HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_same_len(&mut sub, HEAD_11), HEAD_11, "{name}");
        assert_eq!(sub.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "{name}");
        server.publish("secure", "text/plain", b"over tls");
        let part = chunk("Content-Type: text/plain\n\nover tls--00MsgBus00\n");
        assert_eq!(read_n(&mut sub, part.len()), part, "{name}");
    }
}

#[test]
fn large_messages_and_sse_go_through_the_tls_writer_whole() {
    let files = make_cert("large", &rcgen::PKCS_ECDSA_P256_SHA256);
    let server = start(&files);
    let mut sse = connect(&server, &files);
    sse.write_all(b"GET /msgbus/big HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let head = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";
    assert_eq!(read_same_len(&mut sse, head), head);
    // Publish over TLS too: 3 MiB, more than rustls buffers, in one message.
    let body = "x".repeat(3 << 20);
    let mut publisher = connect(&server, &files);
    let request = format!("POST /msgbus/big HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    publisher.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = publisher.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{answer}"
    );
    // Within the limit: 1 MiB less a little, delivered whole over TLS.
    let body = "y".repeat((1 << 20) - 64);
    let mut publisher = connect(&server, &files);
    let request = format!("POST /msgbus/big HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    publisher.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = publisher.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    let id = header_value(&answer, "Msgbus-Id");
    let want = format!("id: {id}\ndata: {body}\n\n");
    assert_eq!(read_n(&mut sse, want.len()), want);
}

#[test]
fn bad_certificate_files_are_named_at_start() {
    let files = make_cert("bad", &rcgen::PKCS_ECDSA_P256_SHA256);
    let other = make_cert("other", &rcgen::PKCS_ECDSA_P256_SHA256);
    std::fs::write(files.dir.join("garbage.pem"), "not a certificate\n").unwrap();
    let garbage = files.dir.join("garbage.pem").display().to_string();
    let missing = files.dir.join("missing.pem").display().to_string();
    let cases = [
        (
            garbage.clone(),
            files.key(),
            format!("{garbage}: no certificate in the file"),
        ),
        (
            missing.clone(),
            files.key(),
            format!("{missing}: No such file or directory"),
        ),
        (
            files.cert(),
            garbage.clone(),
            format!("{garbage}: no PEM item of the expected kind in the file"),
        ),
        (
            files.cert(),
            other.key(),
            format!("{}: does not go with the certificate", other.key()),
        ),
    ];
    for (cert, key, want) in cases {
        let out = run_to_exit(
            &[
                "-l",
                "127.0.0.1",
                "-p",
                "0",
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
            ],
            "msgbus with a bad certificate file",
        );
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&want), "{want} in {stderr}");
    }
}

#[test]
fn websocket_and_long_poll_over_tls() {
    let files = make_cert("ws", &rcgen::PKCS_ECDSA_P256_SHA256);
    let server = start(&files);
    let mut ws = connect(&server, &files);
    ws.write_all(b"GET /msgbus/tws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let switched = "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_eq!(read_same_len(&mut ws, switched), switched);
    let id = server.publish_id("tws", b"secret");
    let mut frame = [0u8; 8];
    ws.read_exact(&mut frame).unwrap();
    assert_eq!(&frame, b"\x81\x06secret");
    let mut poll = connect(&server, &files);
    let request = format!("GET /msgbus/tws?transport=longpoll&since={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", id - 1);
    poll.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = poll.read_to_string(&mut answer);
    assert!(
        answer.ends_with(&format!("\"data\":\"secret\"}}],\"cursor\":{id}}}\n")),
        "{answer}"
    );
}

/// TLS 1.2 and 1.3 both: a client limited to either gets in and is served.
#[test]
fn tls_1_2_and_1_3_are_both_served() {
    let files = make_cert("versions", &rcgen::PKCS_ECDSA_P256_SHA256);
    let server = start(&files);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut roots = RootCertStore::empty();
        roots.add(files.cert_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let sock = TcpStream::connect(server.tls_addr.unwrap()).unwrap();
        sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(b"GET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = tls.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert_eq!(tls.conn.protocol_version(), Some(version.version));
    }
}
