//! Logging to a file that can be reopened after rotation (SIGUSR1), behind env_logger.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A shared handle: the logger writes through it, the reactor reopens it.
#[derive(Clone)]
pub struct LogFile {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: PathBuf,
    file: File,
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let file = open_append(path)?;
        Ok(LogFile {
            inner: Arc::new(Mutex::new(Inner {
                path: path.to_path_buf(),
                file,
            })),
        })
    }

    /// Opens the path again: after `mv msgbus.log msgbus.log.1`, new lines go to a new file.
    pub fn reopen(&self) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.file = open_append(&inner.path)?;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.file.flush()
    }
}
