//! HTTP/1.x without sockets: request heads, body framing, response heads, routing, static file
//! lookup. Everything here takes bytes and returns values, so it is unit-tested and fuzzed directly.

pub mod base64;
pub mod chunked;
pub mod date;
pub mod proxy;
pub mod query;
pub mod request;
pub mod response;
pub mod route;
pub mod static_files;
