//! msgbus-load: command line → Config, one Runner, one report; nothing else.

mod config;
mod hist;
mod http;
mod longpoll;
mod marker;
mod plot;
mod procfs;
mod report;
mod run;
mod timeline;

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use config::{Command, Config, USAGE};

/// Descriptors kept for the poll, the publisher, stdio and /proc reads.
const SPARE_FDS: u64 = 32;

fn main() -> ExitCode {
    let cfg = match Config::from_args(std::env::args_os().skip(1)) {
        Ok(Command::Run(cfg)) => *cfg,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&e.to_string()),
    };
    let limit = raise_fd_limit();
    if cfg.subs as u64 + SPARE_FDS > limit {
        return usage_error(&format!(
            "--subs {} needs {} open files, the limit is {limit} (ulimit -n)",
            cfg.subs,
            cfg.subs as u64 + SPARE_FDS
        ));
    }
    for &pid in &cfg.server_pids {
        if let Err(e) = procfs::rss_bytes(pid).and(procfs::cpu_seconds(pid)) {
            return usage_error(&format!("--server-pid {pid}: cannot read /proc/{pid}: {e}"));
        }
    }
    // Opened now, so a path that cannot be written fails before the run, not after it.
    let mut plot_file = match cfg.plot.as_ref().map(File::create).transpose() {
        Ok(f) => f,
        Err(e) => {
            let path = cfg.plot.as_ref().expect("a path").display();
            return usage_error(&format!("--plot {path}: {e}"));
        }
    };
    let mut per_message_file = match cfg.per_message.as_ref().map(File::create).transpose() {
        Ok(f) => f,
        Err(e) => {
            let path = cfg.per_message.as_ref().expect("a path").display();
            return usage_error(&format!("--per-message {path}: {e}"));
        }
    };
    let origin = Instant::now();
    let outcome = match run::Runner::new(&cfg, origin) {
        Ok(r) => r.run(),
        Err(e) => {
            eprintln!("msgbus-load: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(file) = plot_file.as_mut() {
        let title = format!(
            "msgbus-load: {} {} subscribers, {} messages of {} bytes",
            cfg.subs,
            format!("{:?}", cfg.transport).to_lowercase(),
            cfg.messages,
            cfg.size
        );
        let svg = plot::svg(&title, &outcome.samples, outcome.publish_at);
        if let Err(e) = file.write_all(svg.as_bytes()) {
            let path = cfg.plot.as_ref().expect("a path").display();
            eprintln!("msgbus-load: error: --plot {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(file) = per_message_file.as_mut() {
        let mut text = String::from("seq to_last_ms subscribers\n");
        for (seq, to_last_ns, subscribers) in outcome.deliveries.per_message() {
            text += &format!("{seq} {:.3} {subscribers}\n", to_last_ns as f64 / 1e6);
        }
        if let Err(e) = file.write_all(text.as_bytes()) {
            let path = cfg.per_message.as_ref().expect("a path").display();
            eprintln!("msgbus-load: error: --per-message {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let report = report::Report::new(&cfg, &outcome);
    if cfg.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    // Several publisher connections interleave: their seqs are not one order to check.
    let disorder = report.out_of_order > 0 && cfg.publishers == 1;
    if report.lost == 0 && report.duplicates == 0 && !disorder {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("msgbus-load: error: {msg}");
    ExitCode::from(2)
}

/// Raises the soft open-file limit to the hard one; returns the limit in force.
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}
