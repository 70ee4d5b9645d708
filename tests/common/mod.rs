//! Shared test support. The in-memory shell lives in the library
//! (`cashe::raft::memory`) so the simulator uses it too.
#![allow(unused_imports, dead_code)]

pub mod checking;
pub mod history;
pub mod nemesis;

pub use cashe::raft::memory::{node_seed, Replica};
