//! Shared test support: the in-memory shell lives in the library
//! (`cashe::raft::memory`) so the simulator uses it too.
#![allow(unused_imports)]

pub use cashe::raft::memory::{node_seed, Replica};
