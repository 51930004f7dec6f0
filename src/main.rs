//! The command line: `msgbus [OPTIONS]` serves; `msgbus pub` and `msgbus sub` are the clients.

use std::ffi::OsString;
use std::process::ExitCode;

use msgbus::config::{Command, Config, USAGE};
use msgbus::logfile::{self, LogFile, Sink};
use msgbus::privileges;
use msgbus::server::Server;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("pub") => return msgbus::client::publish_main(&args[1..]),
        Some("sub") => return msgbus::client::subscribe_main(&args[1..]),
        _ => {}
    }
    let cfg = match Config::from_args(args) {
        Ok(Command::Serve(cfg)) => *cfg,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("msgbus {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("msgbus: {e}");
            return ExitCode::from(2);
        }
    };
    let log_file = match &cfg.log_file {
        Some(path) => match LogFile::open(path) {
            Ok(log) => Some(log),
            Err(e) => {
                eprintln!("msgbus: log file {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // Opened as root, the log must stay writable (and reopenable) by the user -u switches to.
    if let (Some(log), Some(user)) = (&log_file, &cfg.user) {
        if privileges::is_root() {
            if let Err(e) = privileges::give(&log.path(), user) {
                eprintln!("msgbus: log file {}: {e}", log.path().display());
                return ExitCode::FAILURE;
            }
        }
    }
    let to_file = log_file.is_some();
    let sink = match &log_file {
        Some(log) => Sink::File(log.clone()),
        None => Sink::stderr(),
    };
    logfile::init(cfg.verbosity, sink);
    let started = Server::new(cfg).map(|mut server| {
        if let Some(log) = log_file {
            server.set_log_file(log);
        }
        server
    });
    match started.and_then(|mut server| server.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if to_file {
                log::error!("{e}");
            }
            eprintln!("msgbus: {e}");
            ExitCode::FAILURE
        }
    }
}
