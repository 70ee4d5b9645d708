//! The `cashe` command line. The flags are the original Cashe's
//! (`--id --listenaddr --raftaddr --leaderaddr`, as `--flag value` or
//! `--flag=value`) plus the data directory, timing, limits and log level.
//! With no flags at all it starts a one-node cluster on :3000/:4000 with
//! its data in ./data/raft0.

use cashe::node::COMMAND_BYTES_MAX;
use cashe::protocol::parser::VALUE_BYTES_DEFAULT;
use cashe::protocol::Limits;
use cashe::raft::PlantedBug;
use cashe::runtime::{serve, ServerConfig, Stopped};
use clap::Parser;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

// A value of the default size, with a key of the largest size and the
// command around it, fits in one log entry and in the default query buffer.
const _: () = assert!(VALUE_BYTES_DEFAULT >= 16 << 20, "values of 16 MiB are accepted by default");
const _: () = assert!(
    VALUE_BYTES_DEFAULT + (64 << 10) + (1 << 10) <= COMMAND_BYTES_MAX,
    "a SET of a value of the default maximum fits in one log entry"
);

/// mimalloc instead of glibc's malloc: see Cargo.toml (resident bytes per
/// key and allocation cost on the hot path, measured by benches/cluster.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A replicated, durable, linearizable key-value database that speaks the
/// Redis protocol. Start the first node with its --id and addresses; start
/// more with --leaderaddr pointing at any member's client address.
#[derive(Debug, Parser)]
#[command(name = "cashe", version, about)]
struct Args {
    /// This node's name, unique in the cluster.
    #[arg(long, default_value = "raft0")]
    id: String,
    /// Address for Redis clients; `:3000` listens on every interface.
    #[arg(long, default_value = ":3000")]
    listenaddr: String,
    /// Address for Raft peers; `:4000` listens on every interface.
    #[arg(long, default_value = ":4000")]
    raftaddr: String,
    /// Client address of any member to join through. Used only when the
    /// data directory is empty; a restarted member ignores it.
    #[arg(long)]
    leaderaddr: Option<String>,
    /// Where the write-ahead log and snapshots live [default: ./data/<id>].
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Client address other members and `CLUSTER NODES` show
    /// [default: the --listenaddr host, or 127.0.0.1 when it has none].
    #[arg(long)]
    advertise_client: Option<String>,
    /// Peer address other members connect to [default: as for clients].
    #[arg(long)]
    advertise_raft: Option<String>,
    /// Length of one logical tick, in milliseconds.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// A leader sends heartbeats every this many ticks.
    #[arg(long, default_value_t = 2)]
    heartbeat_ticks: u32,
    /// Election timeout, in ticks (randomised up to twice this).
    #[arg(long, default_value_t = 30)]
    election_ticks: u32,
    /// Compact the log into a snapshot after this many applied entries
    /// (member n waits (n-1)/8 longer, so members do not all write at once).
    #[arg(long, default_value_t = 100_000)]
    snapshot_entries: u64,
    /// Longest bulk argument (a value, a key, ...) a client may send, in
    /// bytes; CONFIG GET proto-max-bulk-len reports it. A longer one is a
    /// protocol error (`-ERR Protocol error: invalid bulk length`) and the
    /// connection is closed, as Redis does over its proto-max-bulk-len. At
    /// most --max-query-bytes. Whatever its arguments, a command is also
    /// refused (`-ERR command of N bytes is over the maximum ...`, the
    /// connection stays open) if it does not fit in one log entry (64 MiB
    /// less 64 KiB) [default: 33554432 (32 MiB), or --max-query-bytes if
    /// that is lower]
    #[arg(long)]
    max_value_bytes: Option<usize>,
    /// The default user's password: every connection must `AUTH password`
    /// (or `HELLO 3 AUTH default password`) before anything but AUTH, HELLO
    /// and QUIT, as with Redis's requirepass. Also read from the
    /// CASHE_REQUIREPASS environment variable, which keeps it out of the
    /// process list [default: none, no authentication]
    #[arg(long)]
    requirepass: Option<String>,
    /// Redis's ACL file: lines `user NAME rule...` (on/off, >password,
    /// #sha256, nopass, +@category, -command, ~pattern, allkeys, ...). Read
    /// once at start; every node of a cluster must be given the same file
    /// (users are not replicated). Not with --requirepass: give the default
    /// user its password in the file [default: only the default user]
    #[arg(long)]
    aclfile: Option<PathBuf>,
    /// The user a new node authenticates as when it joins through
    /// --leaderaddr (with --masterauth) [default: the default user]
    #[arg(long)]
    masteruser: Option<String>,
    /// The password a new node sends in AUTH before CLUSTER JOIN, when the
    /// cluster requires one. Also read from the CASHE_MASTERAUTH
    /// environment variable [default: none, no AUTH]
    #[arg(long)]
    masterauth: Option<String>,
    /// Most arguments in one command.
    #[arg(long, default_value_t = 1 << 20)]
    max_arguments: usize,
    /// Longest inline command, in bytes.
    #[arg(long, default_value_t = 64 << 10)]
    max_inline_bytes: usize,
    /// Most bytes one connection may have sent but not yet had parsed into
    /// whole commands; over it the connection is closed. At most the
    /// largest command a node accepts (64 MiB less 64 KiB, what one log
    /// entry can hold), which is the default.
    #[arg(long, default_value_t = COMMAND_BYTES_MAX)]
    max_query_bytes: usize,
    /// Most client connections at once.
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
    /// How long a new node keeps retrying to join, in seconds.
    #[arg(long, default_value_t = 60)]
    join_timeout_s: u64,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// `:3000` → bind every interface, advertise 127.0.0.1:3000; `host:port` →
/// bind and advertise that (0.0.0.0 advertises 127.0.0.1).
fn address(flag: &str, text: &str, advertise: Option<&str>) -> Result<(SocketAddr, String), String> {
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    let bind = full
        .to_socket_addrs()
        .map_err(|e| format!("--{flag} {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("--{flag} {text}: no address"))?;
    let advertised = match advertise {
        Some(a) => a.to_string(),
        None if bind.ip().is_unspecified() => format!("127.0.0.1:{}", bind.port()),
        None => bind.to_string(),
    };
    Ok((bind, advertised))
}

fn config(args: &Args, stop: Arc<AtomicBool>) -> Result<ServerConfig, String> {
    let (client_bind, client_advertise) =
        address("listenaddr", &args.listenaddr, args.advertise_client.as_deref())?;
    let (raft_bind, raft_advertise) = address("raftaddr", &args.raftaddr, args.advertise_raft.as_deref())?;
    if args.id.is_empty() || args.id.contains(char::is_whitespace) {
        return Err(format!("--id {:?}: a name must be non-empty and without spaces", args.id));
    }
    if args.election_ticks <= args.heartbeat_ticks || args.heartbeat_ticks == 0 || args.tick_ms == 0 {
        return Err("need --tick-ms > 0 and 0 < --heartbeat-ticks < --election-ticks".into());
    }
    if args.max_query_bytes > COMMAND_BYTES_MAX {
        // A command held whole in the query buffer must fit in one log
        // entry, and an entry in one frame.
        return Err(format!(
            "--max-query-bytes {} is over the maximum of {COMMAND_BYTES_MAX} bytes (the largest command \
             one log entry holds)",
            args.max_query_bytes
        ));
    }
    let value_bytes_max = args.max_value_bytes.unwrap_or(VALUE_BYTES_DEFAULT.min(args.max_query_bytes));
    if value_bytes_max > args.max_query_bytes {
        // A longer argument could never be whole in the query buffer.
        return Err(format!(
            "--max-value-bytes {value_bytes_max} is over --max-query-bytes {}",
            args.max_query_bytes
        ));
    }
    let join_via =
        args.leaderaddr
            .as_ref()
            .map(|a| if a.starts_with(':') { format!("127.0.0.1{a}") } else { a.clone() });
    let requirepass = args.requirepass.clone().or_else(|| std::env::var("CASHE_REQUIREPASS").ok());
    let acl = match &args.aclfile {
        Some(_) if requirepass.is_some() => {
            return Err("--requirepass and --aclfile cannot be used together: give the default user its \
                        password in the ACL file (user default on >password ~* &* +@all)"
                .into())
        }
        Some(path) => Some(acl_file(path)?),
        None => None,
    };
    let join_auth =
        args.masterauth.clone().or_else(|| std::env::var("CASHE_MASTERAUTH").ok()).map(|password| {
            cashe::runtime::join::JoinAuth {
                user: args.masteruser.clone(),
                password: cashe::node::Password::new(password),
            }
        });
    Ok(ServerConfig {
        name: args.id.clone(),
        client_bind,
        raft_bind,
        client_advertise,
        raft_advertise,
        join_via,
        datadir: args.datadir.clone().unwrap_or_else(|| PathBuf::from("./data").join(&args.id)),
        tick: Duration::from_millis(args.tick_ms),
        heartbeat_ticks: args.heartbeat_ticks,
        election_ticks: args.election_ticks,
        snapshot_entries: args.snapshot_entries.max(1),
        limits: Limits {
            value_bytes_max,
            key_bytes_max: Limits::default().key_bytes_max,
            arguments_max: args.max_arguments.max(1),
            inline_bytes_max: args.max_inline_bytes,
        },
        query_bytes_max: args.max_query_bytes,
        clients_max: args.max_clients,
        join_timeout: Duration::from_secs(args.join_timeout_s),
        stop,
        planted_bug: planted_bug()?,
        adopt_listener,
        requirepass: requirepass.map(cashe::node::Password::new),
        acl,
        join_auth,
    })
}

/// Reads and parses `--aclfile`; an error names the file and each bad
/// line, as Redis's start-up does.
fn acl_file(path: &std::path::Path) -> Result<cashe::node::Acl, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--aclfile {}: cannot read it: {e}", path.display()))?;
    cashe::node::Acl::parse(&text, &path.display().to_string())
        .map_err(|errors| format!("Aborting start-up because of ACL errors: {errors}"))
}

/// Hands a listener bound by the runtime (without `SO_REUSEPORT`, see
/// `cashe::runtime::AdoptListener`) to glommio. Here because the library
/// forbids `unsafe` code; called on the glommio executor, as glommio needs.
fn adopt_listener(listener: std::net::TcpListener) -> glommio::net::TcpListener {
    // SAFETY: `into_raw_fd` gives up the only handle to a socket that is
    // bound and listening, which is what `from_raw_fd` requires; glommio
    // owns it from here and closes it when its listener drops. glommio's
    // accept works on any listening socket, blocking or not (it sets
    // O_NONBLOCK around its own first attempt, then asks io_uring).
    unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) }
}

/// Only a binary built with the `planted-bugs` feature (the one `cargo
/// test` builds) reads `CASHE_MODEL_BUG`, so that real-process tests can
/// prove they catch a planted bug; a release build has none.
fn planted_bug() -> Result<PlantedBug, String> {
    #[cfg(feature = "planted-bugs")]
    if let Ok(name) = std::env::var("CASHE_MODEL_BUG") {
        return name.parse().map_err(|e| format!("CASHE_MODEL_BUG: {e}"));
    }
    Ok(PlantedBug::None)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let level = match args.log_level.parse::<tracing::Level>() {
        Ok(level) => level,
        Err(_) => {
            eprintln!("cashe: --log-level {:?}: use error, warn, info, debug or trace", args.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_ansi(false).init();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("cashe: cannot handle signal {signal}: {e}");
            return ExitCode::from(1);
        }
    }
    let config = match config(&args, stop) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cashe: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = glommio::LocalExecutorBuilder::default().name("cashe").spawn(move || serve(config));
    let outcome = match outcome {
        Ok(handle) => handle.join().map_err(|e| format!("executor: {e}")).and_then(|r| r),
        Err(e) => Err(format!("cannot start the glommio executor: {e}")),
    };
    match outcome {
        Ok(Stopped::Signal) | Ok(Stopped::Removed) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("cashe: {e}");
            ExitCode::from(1)
        }
    }
}
