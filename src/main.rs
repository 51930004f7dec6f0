//! The command line: `msgbus [OPTIONS]` serves; `msgbus pub` and `msgbus sub` are the clients.

use std::ffi::OsString;
use std::process::ExitCode;

use msgbus::config::{Command, Config, USAGE};
use msgbus::logfile::LogFile;
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
    init_logger(cfg.verbosity, log_file.clone());
    let started = Server::new(cfg).map(|mut server| {
        if let Some(log) = log_file {
            server.set_log_file(log);
        }
        server
    });
    match started.and_then(|mut server| server.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msgbus: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Info by default, debug with -v, trace with -vv; RUST_LOG, when set, decides instead.
fn init_logger(verbosity: u8, file: Option<LogFile>) {
    let level = match verbosity {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(level)
        .parse_env("RUST_LOG")
        .format_target(false);
    if let Some(file) = file {
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    builder.init();
}
