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
    /// After `-u`, making that file needs its directory to be writable by the user (or the
    /// rotation to create it, owned by the user); the error says so.
    pub fn reopen(&self) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.file = open_append(&inner.path).map_err(|e| {
            if e.kind() != io::ErrorKind::PermissionDenied {
                return e;
            }
            // SAFETY: geteuid has no failure mode.
            let uid = unsafe { libc::geteuid() };
            io::Error::new(
                e.kind(),
                format!(
                    "{}: {e} (as uid {uid}: give the user its directory, or have the rotation \
                     create the new file owned by the user)",
                    inner.path.display()
                ),
            )
        })?;
        Ok(())
    }

    pub fn path(&self) -> PathBuf {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.path.clone()
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

/// Where log lines go and how they look.
pub enum Sink {
    /// stderr, with a timestamp on each line.
    Stderr,
    /// stderr connected to the journal: no timestamp of our own (the journal has one), and the
    /// level as a `<N>` syslog priority prefix, which journald reads.
    Journal,
    /// `--log FILE`.
    File(LogFile),
}

impl Sink {
    /// The journal when `$JOURNAL_STREAM` names stderr (its `device:inode`), else stderr.
    pub fn stderr() -> Sink {
        match std::env::var("JOURNAL_STREAM") {
            Ok(stream) if names_stderr(&stream) => Sink::Journal,
            _ => Sink::Stderr,
        }
    }
}

fn names_stderr(stream: &str) -> bool {
    let Some((dev, ino)) = stream.trim().split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on stderr only reads its metadata into the zeroed struct.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut stat) } != 0 {
        return false;
    }
    stat.st_dev as u64 == dev && stat.st_ino as u64 == ino
}

/// The syslog priority of a level, as sd-daemon(3)'s prefixes.
pub fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Whether `RUST_LOG` decides the level, so -v (and a reload changing it) does not.
static ENV_DECIDES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Starts the logger. The level is info by default, debug with -v, trace with -vv; RUST_LOG,
/// when set, decides instead. Without RUST_LOG the level is only `log::max_level`, so a reload
/// can change it.
pub fn init(verbosity: u8, sink: Sink) {
    use std::io::Write as _;
    let mut builder = env_logger::Builder::new();
    builder.format_target(false);
    let from_env = std::env::var_os("RUST_LOG").is_some();
    if from_env {
        builder.filter_level(level(verbosity)).parse_env("RUST_LOG");
    } else {
        builder.filter_level(log::LevelFilter::Trace);
    }
    match sink {
        Sink::Stderr => {}
        Sink::Journal => {
            builder.format(|buf, record| {
                writeln!(buf, "<{}>{}", priority(record.level()), record.args())
            });
        }
        Sink::File(file) => {
            builder.target(env_logger::Target::Pipe(Box::new(file)));
        }
    }
    builder.init();
    ENV_DECIDES.store(from_env, std::sync::atomic::Ordering::Relaxed);
    set_verbosity(verbosity);
}

/// Sets the level from -v's count; false when RUST_LOG decides it instead.
pub fn set_verbosity(verbosity: u8) -> bool {
    if ENV_DECIDES.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    log::set_max_level(level(verbosity));
    true
}

fn level(verbosity: u8) -> log::LevelFilter {
    match verbosity {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}
