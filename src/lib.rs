//! msgbus: a single-threaded HTTP push server. Publishers POST to a channel; every subscriber of
//! the channel gets the message at once, each wire format encoded once and shared.
//!
//! Protocol code (`http`, `transport`, `bus`) has no sockets and no clock; the reactor
//! (`server`, `conn`, `io`, `outq`, `timer`) carries bytes between it and the kernel.

pub mod activation;
pub mod amqp;
pub mod auth;
pub mod backoff;
pub mod bus;
pub mod client;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod doors;
pub mod gate;
pub mod glob;
pub mod h2;
pub mod http;
pub mod io;
pub mod link;
pub mod listener;
pub mod logfile;
pub mod lookup;
pub mod message;
pub mod notify;
pub mod outq;
pub mod privileges;
pub mod server;
pub mod signals;
pub mod stats;
pub mod store;
pub mod timer;
pub mod tls;
pub mod transport;
pub mod upstream;
