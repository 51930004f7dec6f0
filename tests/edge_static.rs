//! Static files: a FIFO (or anything but a regular file) in the document root is not found,
//! rather than blocking the server in open(); names starting with a dot are not found either.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use common::*;

struct Docroot(PathBuf);

impl Docroot {
    fn new(name: &str) -> Docroot {
        let dir = std::env::temp_dir().join(format!("msgbus-edge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub/.git")).unwrap();
        std::fs::write(dir.join("ok.txt"), "fine\n").unwrap();
        std::fs::write(dir.join(".env"), "PASSWORD=x\n").unwrap();
        std::fs::write(dir.join("sub/.htpasswd"), "u:x\n").unwrap();
        std::fs::write(dir.join("sub/.git/config"), "[core]\n").unwrap();
        std::os::unix::fs::symlink(dir.join(".env"), dir.join("env.txt")).unwrap();
        let fifo = CString::new(dir.join("pipe").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        Docroot(dir)
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Docroot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const NOT_FOUND: &str = "HTTP/1.1 404 Not Found\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n";

fn get(server: &Server, path: &str) -> String {
    server
        .exchange(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
}

#[test]
fn a_fifo_is_not_found_and_does_not_block_the_server() {
    let root = Docroot::new("fifo");
    let server = Server::start(&["-d", &root.path()]);
    // Before the fix the server hung in open() here, and this read timed out.
    assert_eq!(get(&server, "/pipe"), NOT_FOUND);
    let ok = get(&server, "/ok.txt");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nfine\n"), "{ok}");
}

#[test]
fn dotfiles_are_not_found() {
    let root = Docroot::new("dot");
    let server = Server::start(&["-d", &root.path()]);
    for path in [
        "/.env",
        "/sub/.htpasswd",
        "/sub/.git/config",
        "/sub/.git/",
        "/%2eenv",
        "/env.txt", // a symlink to a dotfile
    ] {
        assert_eq!(get(&server, path), NOT_FOUND, "{path}");
    }
    // "." segments are only a way of writing the same path.
    let ok = get(&server, "/./ok.txt");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
}
