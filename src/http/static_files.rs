//! Finding the file a URL path names under the document root, and never one outside it.
//!
//! The path arrives percent-decoded. It is refused outright if any component is `..`, holds a
//! NUL or a backslash; what is left is joined to the root and canonicalized, which resolves
//! symlinks, and the result must still lie under the (canonical) root. Only regular files are
//! served; a directory serves its `index.html`.
//!
//! Names starting with a dot (`.git`, `.env`, `.htpasswd`) are not served, whether the URL names
//! them or a symlink leads to them. The file is opened with O_NONBLOCK and checked with fstat
//! before anything is read: opening a FIFO would otherwise block the whole server until some
//! writer came along, and a device could block any read.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

pub struct StaticFile {
    pub file: File,
    pub len: u64,
    /// Modification time, seconds since the epoch.
    pub modified: u64,
    pub content_type: &'static str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LookupError {
    /// No such file, or one we will not admit exists (outside the root, not regular, a dotfile).
    NotFound,
    /// The path is not one a file could have (`..`, NUL, backslash).
    Forbidden,
}

/// `docroot` must be canonical (the configuration canonicalizes it at start-up).
pub fn resolve(docroot: &Path, url_path: &[u8]) -> Result<StaticFile, LookupError> {
    let mut relative = PathBuf::new();
    for component in url_path.split(|&b| b == b'/') {
        match component {
            b"" | b"." => continue,
            b".." => return Err(LookupError::Forbidden),
            c if c.contains(&0) || c.contains(&b'\\') => return Err(LookupError::Forbidden),
            [b'.', ..] => return Err(LookupError::NotFound),
            c => relative.push(OsStr::from_bytes(c)),
        }
    }
    let mut path = under_root(docroot, &docroot.join(&relative))?;
    // `/a.txt/` names a directory, which a file is not.
    if url_path.ends_with(b"/") && !path.is_dir() {
        return Err(LookupError::NotFound);
    }
    if path.is_dir() {
        path = under_root(docroot, &path.join("index.html"))?;
    }
    let (file, meta) = open_regular(&path)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(StaticFile {
        file,
        len: meta.len(),
        modified,
        content_type: content_type_for(&path),
    })
}

/// Canonicalizes `path` and admits it only if it still lies under `docroot` with no component
/// below the root that starts with a dot (a symlink may lead to one).
fn under_root(docroot: &Path, path: &Path) -> Result<PathBuf, LookupError> {
    let path = path.canonicalize().map_err(|_| LookupError::NotFound)?;
    let below = path
        .strip_prefix(docroot)
        .map_err(|_| LookupError::NotFound)?;
    let hidden = below.components().any(|c| match c {
        Component::Normal(name) => name.as_bytes().first() == Some(&b'.'),
        _ => true,
    });
    if hidden {
        return Err(LookupError::NotFound);
    }
    Ok(path)
}

/// Opens `path` without blocking and admits it only if what was opened is a regular file.
/// Describes the file opened, not whatever the name points at by now.
fn open_regular(path: &Path) -> Result<(File, Metadata), LookupError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|_| LookupError::NotFound)?;
    let meta = file.metadata().map_err(|_| LookupError::NotFound)?;
    if !meta.is_file() {
        return Err(LookupError::NotFound);
    }
    Ok((file, meta))
}

/// The Content-Type for a file name's extension.
pub fn content_type_for(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "txt" | "text" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    struct Tree(PathBuf);

    impl Tree {
        /// root/{index.html, a.txt, sub/index.html, sub/x.JS, empty/, link-out -> outside,
        /// link-in -> a.txt, dotfiles, link-hidden -> .hidden, fifo}, plus outside/secret
        /// beside root.
        fn new(name: &str) -> Tree {
            let base =
                std::env::temp_dir().join(format!("msgbus-static-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            let root = base.join("root");
            std::fs::create_dir_all(root.join("sub")).unwrap();
            std::fs::create_dir_all(root.join("empty")).unwrap();
            std::fs::create_dir_all(base.join("outside")).unwrap();
            std::fs::write(root.join("index.html"), "<p>home</p>").unwrap();
            std::fs::write(root.join("a.txt"), "aaa").unwrap();
            std::fs::write(root.join("sub/index.html"), "sub").unwrap();
            std::fs::write(root.join("sub/x.JS"), "x()").unwrap();
            std::fs::write(base.join("outside/secret"), "secret").unwrap();
            std::os::unix::fs::symlink(base.join("outside"), root.join("link-out")).unwrap();
            std::os::unix::fs::symlink(root.join("a.txt"), root.join("link-in")).unwrap();
            std::fs::write(root.join(".hidden"), "dot").unwrap();
            std::fs::write(root.join("sub/.hidden"), "dot").unwrap();
            std::fs::create_dir_all(root.join(".git")).unwrap();
            std::fs::write(root.join(".git/config"), "dot").unwrap();
            std::os::unix::fs::symlink(root.join(".hidden"), root.join("link-hidden")).unwrap();
            let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
            // SAFETY: mkfifo reads the NUL-terminated path only.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
            Tree(base)
        }

        fn root(&self) -> PathBuf {
            self.0.join("root").canonicalize().unwrap()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn body(found: Result<StaticFile, LookupError>) -> String {
        let mut text = String::new();
        found.unwrap().file.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn finds_files_and_indexes() {
        let tree = Tree::new("finds");
        let root = tree.root();
        assert_eq!(body(resolve(&root, b"/")), "<p>home</p>");
        assert_eq!(body(resolve(&root, b"/a.txt")), "aaa");
        assert_eq!(body(resolve(&root, b"//./a.txt")), "aaa");
        assert_eq!(body(resolve(&root, b"/sub")), "sub");
        assert_eq!(body(resolve(&root, b"/sub/")), "sub");
        assert_eq!(body(resolve(&root, b"/link-in")), "aaa");
        let found = resolve(&root, b"/sub/x.JS").unwrap();
        assert_eq!(found.len, 3);
        assert_eq!(found.content_type, "text/javascript; charset=utf-8");
        assert!(found.modified > 1_600_000_000);
    }

    #[test]
    fn nothing_outside_the_root() {
        let tree = Tree::new("outside");
        let root = tree.root();
        let cases: &[(&[u8], LookupError)] = &[
            (b"/../outside/secret", LookupError::Forbidden),
            (b"/sub/../../outside/secret", LookupError::Forbidden),
            (b"/..", LookupError::Forbidden),
            (b"/a.txt\0.html", LookupError::Forbidden),
            (b"/..\\outside\\secret", LookupError::Forbidden),
            (b"/link-out/secret", LookupError::NotFound),
            (b"/link-out", LookupError::NotFound),
            (b"/empty/", LookupError::NotFound),
            (b"/missing", LookupError::NotFound),
            (b"/a.txt/", LookupError::NotFound),
            (b"/.hidden", LookupError::NotFound),
            (b"/sub/.hidden", LookupError::NotFound),
            (b"/.git/config", LookupError::NotFound),
            (b"/link-hidden", LookupError::NotFound),
            (b"/fifo", LookupError::NotFound),
        ];
        for (path, want) in cases {
            let got = resolve(&root, path).err();
            assert_eq!(
                got.as_ref(),
                Some(want),
                "{}",
                String::from_utf8_lossy(path)
            );
        }
    }

    #[test]
    fn content_types() {
        let cases = [
            ("a.html", "text/html; charset=utf-8"),
            ("a.HTM", "text/html; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.png", "image/png"),
            ("a", "application/octet-stream"),
            ("a.tar.gz", "application/octet-stream"),
        ];
        for (name, want) in cases {
            assert_eq!(content_type_for(Path::new(name)), want, "{name}");
        }
    }
}
