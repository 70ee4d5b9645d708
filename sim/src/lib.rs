//! Deterministic simulation of cashe clusters, every decision drawn from a
//! seed so that any failure replays exactly.
//!
//! - [`cluster`]: the real node on turmoil hosts (TCP, the peer wire, RESP,
//!   the WAL on a simulated disk) under a seeded nemesis, with a
//!   linearizability checker over the client history;
//! - [`core_chaos`]: a faster, lower-level chaos run of the Raft core alone
//!   through its in-memory shell;
//! - [`linearizability`]: the per-key history checker;
//! - [`listing`]: reads the checker's listing of a history back;
//! - [`trace`]: event traces and their digests;
//! - [`ttl`]: the TTL workload's clock bounds and its checker.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod core_chaos;
pub mod linearizability;
pub mod listing;
pub mod trace;
pub mod ttl;
