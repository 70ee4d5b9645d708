//! Deterministic simulation of cashe clusters.
#![forbid(unsafe_code)]

pub mod core_chaos;
pub mod linearizability;

pub use core_chaos::{run, Options};
