//! The `cashe` command line. The flags are the original Cashe's
//! (`--id --listenaddr --raftaddr --leaderaddr`, as `--flag value` or
//! `--flag=value`) plus the data directory and log level.
//!
//! This build contains the Raft core only; the glommio runtime that serves
//! clients and peers is not written yet, so after validating its flags the
//! program says so and exits with status 2 rather than pretending to serve.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// A replicated, durable, linearizable key-value database that speaks the
/// Redis protocol.
#[derive(Debug, Parser)]
#[command(name = "cashe", version, about)]
struct Args {
    /// This node's name, unique in the cluster.
    #[arg(long, default_value = "raft0")]
    id: String,
    /// Address for Redis clients; `:3000` listens on every interface.
    #[arg(long, default_value = ":3000")]
    listenaddr: String,
    /// Address for Raft peers.
    #[arg(long, default_value = ":4000")]
    raftaddr: String,
    /// Client address of any member to join through (new nodes only).
    #[arg(long)]
    leaderaddr: Option<String>,
    /// Where the write-ahead log and snapshots live (default ./data/<id>).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let datadir = args.datadir.clone().unwrap_or_else(|| PathBuf::from("./data").join(&args.id));
    eprintln!(
        "cashe: id={} listenaddr={} raftaddr={} leaderaddr={} datadir={}",
        args.id,
        args.listenaddr,
        args.raftaddr,
        args.leaderaddr.as_deref().unwrap_or("-"),
        datadir.display()
    );
    eprintln!("cashe: this build has the Raft core but no network runtime yet; refusing to start");
    ExitCode::from(2)
}
