//! The older servers' doors. Each is a plug-in: a folder with its routes and state (`mod.rs`,
//! the `conn::Door` trait), its pure codec (`codec.rs`, unit-tested and fuzzed without a socket)
//! and the protocol as the original had it (`PROTOCOL.md`). A door registers its own wire format
//! with the transports' `Wires`; the session, the reactor, the bus and the transports name no
//! door. Every door reaches the bus only through the gate, as the native paths do.

pub mod eventsource_broker;
pub mod lhttp;
pub mod martd;
pub mod simple_comet;

use std::io;

use log::{info, warn};

use crate::config::Config;
use crate::conn::Doors;
use crate::transport::Wires;

/// Opens the doors the configuration asks for, in the order they see requests, registering
/// their wire formats and reading their files (`--esb-users`).
pub fn open(cfg: &Config, wires: &mut Wires) -> io::Result<Doors> {
    let users = match &cfg.esb_users {
        Some(path) => {
            let text = eventsource_broker::read_users(path, cfg)?;
            info!("eventsource-broker door open ({})", path.display());
            Some(text)
        }
        None => None,
    };
    Ok(open_with(cfg, users.as_deref(), wires))
}

/// The same with the users file's text given (the fuzz target has no file).
pub fn open_with(cfg: &Config, esb_users: Option<&str>, wires: &mut Wires) -> Doors {
    let mut doors = Doors::default();
    if let Some(users) = esb_users {
        doors.add(Box::new(eventsource_broker::EsbDoor::open(
            users, cfg, wires,
        )));
    }
    if cfg.martd {
        doors.add(Box::new(martd::MartdDoor::open(wires)));
    }
    if cfg.simple_comet {
        let options = cfg.comet.clone();
        doors.add(Box::new(simple_comet::CometDoor::open(options, wires)));
    }
    if cfg.lhttp {
        doors.add(Box::new(lhttp::LhttpDoor::open(wires)));
    }
    doors
}

/// Whether an open door makes outbound HTTP calls (lhttp's `upstream:` with
/// `--lhttp-upstream`): the reactor then keeps sockets and a client for them.
pub fn makes_outbound_calls(cfg: &Config) -> bool {
    if !cfg.lhttp && !cfg.upstream.allow.is_empty() {
        warn!("--lhttp-upstream has no effect without --lhttp");
    }
    cfg.lhttp && !cfg.upstream.allow.is_empty()
}
