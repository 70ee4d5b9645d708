//! The client protocol: RESP2 and inline commands in, RESP2 replies out.
//! Pure: bytes to values and back, no sockets.

pub mod reply;

pub use reply::Reply;
