//! HTTP/2 (RFC 9113) without I/O: frames (`frame`), header compression (`hpack`, `huffman`)
//! and one connection's state machine (`conn`), bytes in and events out. The reactor carries
//! bytes; the sessions answer the requests this yields, stream by stream.

pub mod bridge;
pub mod conn;
pub mod frame;
pub mod hpack;
pub mod huffman;
pub mod streams;

pub use conn::{Connection, Event, Limits, Request, SendError};
pub use frame::{ErrorCode, PREFACE};
