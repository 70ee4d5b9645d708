//! The client protocol: RESP2 and inline commands in, RESP2 or RESP3 replies out.
//! Pure: bytes to values and back, no sockets.

pub mod fuzz;
pub mod parser;
pub mod reply;

pub use parser::{Limits, Parsed, Parser, ProtocolError, Rejection, Request, Requests};
pub use reply::{Protocol, Reply};
