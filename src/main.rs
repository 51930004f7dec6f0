//! The command line: `msgbus [OPTIONS]` serves; `msgbus pub` and `msgbus sub` are the clients.

use std::ffi::OsString;
use std::process::ExitCode;

use msgbus::config::{Command, Config, USAGE};
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
    init_logger(cfg.verbosity);
    match Server::new(cfg).and_then(|mut server| server.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msgbus: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Info by default, debug with -v, trace with -vv; RUST_LOG, when set, decides instead.
fn init_logger(verbosity: u8) {
    let level = match verbosity {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("RUST_LOG")
        .format_target(false)
        .init();
}
