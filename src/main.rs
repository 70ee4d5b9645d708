//! The `cashe` command line. The flags are the original Cashe's
//! (`--id --listenaddr --raftaddr --leaderaddr`, as `--flag value` or
//! `--flag=value`) plus the data directory, timing, limits and log level.
//! With no flags at all it starts a one-node cluster on :3000/:4000 with
//! its data in ./data/raft0.

use cashe::node::handshake::ClusterSecret;
use cashe::node::COMMAND_BYTES_MAX;
use cashe::protocol::parser::VALUE_BYTES_DEFAULT;
use cashe::protocol::Limits;
use cashe::raft::PlantedBug;
use cashe::runtime::tls::{TlsFiles, TlsSettings};
use cashe::runtime::{serve, ServerConfig, Stopped};
use clap::Parser;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
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
/// key and allocation cost on the hot path, measured by benches/cluster.rs),
/// counting the bytes allocated and not yet freed: INFO's `used_memory`,
/// which `--maxmemory` is checked against (as Redis's zmalloc counts).
#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Counters of allocated bytes, one per group of threads on its own cache
/// line, so that executors do not contend on one; their sum is exact (a
/// thread may free what another allocated, so one slot may go negative).
const SLOTS: usize = 16;

#[repr(align(64))]
struct Slot(AtomicI64);

static ALLOCATED: [Slot; SLOTS] = [const { Slot(AtomicI64::new(0)) }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot; a `const` thread-local without a destructor, so
    /// reading it never allocates (it is read inside the allocator).
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn count(bytes: isize) {
    let slot = MY_SLOT
        .try_with(|slot| {
            if slot.get() == usize::MAX {
                slot.set(NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS);
            }
            slot.get()
        })
        .unwrap_or(0);
    ALLOCATED[slot].0.fetch_add(bytes as i64, Ordering::Relaxed);
}

/// Bytes allocated and not freed, by every thread.
fn used_memory() -> u64 {
    let total: i64 = ALLOCATED.iter().map(|slot| slot.0.load(Ordering::Relaxed)).sum();
    total.max(0) as u64
}

struct Counting;

// SAFETY: every call is passed to mimalloc unchanged; the counting only
// adds and subtracts sizes of what mimalloc handed out or took back.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(pointer, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { mimalloc::MiMalloc.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

/// A replicated, durable, linearizable key-value database that speaks the
/// Redis protocol. Start the first node with its --id and addresses; start
/// more with --leaderaddr pointing at any member's client address.
#[derive(Debug, Parser)]
#[command(name = "cashe", version, about, args_conflicts_with_subcommands = true)]
struct Args {
    /// Offline tools on a data directory (no subcommand: run a node).
    #[command(subcommand)]
    tool: Option<Tool>,
    /// This node's name, unique in the cluster.
    #[arg(long, default_value = "raft0")]
    id: String,
    /// Address for Redis clients; `:3000` listens on every interface; ""
    /// turns the plain client port off (with --tls-listenaddr).
    #[arg(long, default_value = ":3000")]
    listenaddr: String,
    /// Address of the operator's HTTP port: `/metrics` (Prometheus text
    /// format), `/health` (200 while the process serves) and `/ready` (200
    /// once this node has a leader and has applied its commit index, else
    /// 503); `:9121` listens on every interface [default: off].
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Address of a TLS client port, beside the plain one or instead of it;
    /// needs --tls-cert-file, --tls-key-file and --tls-ca-cert-file.
    #[arg(long)]
    tls_listenaddr: Option<String>,
    /// This node's certificate (PEM, the chain from the node's own first).
    /// With the key, the CA and --tls-listenaddr it turns TLS on: the TLS
    /// client port, and mutual TLS on every peer link and join. Its CN or a DNS SAN must be
    /// this node's --id: peers check that name against the member id.
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    tls_key_file: Option<PathBuf>,
    /// The CA certificate(s) (PEM) that client and peer certificates must
    /// chain to.
    #[arg(long)]
    tls_ca_cert_file: Option<PathBuf>,
    /// Whether TLS clients must present a certificate from the CA: yes,
    /// optional (checked if presented) or no, as Redis.
    #[arg(long, default_value = "yes")]
    tls_auth_clients: String,
    /// Peers' certificates must carry one of these names (CN or DNS SAN);
    /// repeat the flag or separate names with commas [default: any
    /// certificate from the CA].
    #[arg(long, value_delimiter = ',')]
    peer_cert_allowed_cn: Vec<String>,
    /// Address for Raft peers; `:4000` listens on every interface.
    #[arg(long, default_value = ":4000")]
    raftaddr: String,
    /// Client address of any member to join through (with TLS, its TLS
    /// client port). Used only when the data directory is empty; a
    /// restarted member ignores it.
    #[arg(long)]
    leaderaddr: Option<String>,
    /// Where the write-ahead log and snapshots live [default: ./data/<id>].
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Client address other members and `CLUSTER NODES` show
    /// [default: the --listenaddr host, or 127.0.0.1 when it has none].
    #[arg(long)]
    advertise_client: Option<String>,
    /// TLS client address other members and `CLUSTER NODES` show to TLS
    /// clients, as Redis's tls-port [default: the --tls-listenaddr host,
    /// or 127.0.0.1 when it has none; on a node without a plain port,
    /// --advertise-client].
    #[arg(long)]
    advertise_tls_client: Option<String>,
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
    /// Leader leases for linearizable reads: `on`, a leader that a quorum
    /// answered within the lease serves reads without a heartbeat round of
    /// their own; `off`, every read waits for one (ReadIndex). Safe only
    /// while no member's clock runs faster or slower than
    /// --clock-drift-percent.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    read_lease: String,
    /// The most any member's clock may run fast or slow, in percent of its
    /// rate (and of --tick-ms: a loop turn longer than a tick counts
    /// against it). The lease is (--election-ticks - 1) * (100 - d) /
    /// (100 + d) ticks, less one.
    #[arg(long, default_value_t = 10)]
    clock_drift_percent: u32,
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
    /// The secret every member of the cluster shares: a peer connection to
    /// --raftaddr must prove it (HMAC-SHA256 challenge-response, both ways)
    /// before a single frame is read, and a joining node must prove it
    /// too. Every node of a cluster needs the same one. Also read from
    /// CASHE_CLUSTER_SECRET, which keeps it out of the process list
    /// [default: none; anyone who reaches the Raft port is trusted]
    #[arg(long)]
    cluster_secret: Option<String>,
    /// Read the cluster secret from this file (its bytes, less a trailing
    /// newline) instead.
    #[arg(long, conflicts_with = "cluster_secret")]
    cluster_secret_file: Option<PathBuf>,
    /// Most connections the Raft port holds open at once (peers connect
    /// once each; the rest are refused and logged).
    #[arg(long, default_value_t = 256)]
    max_peer_connections: usize,
    /// With no password set, refuse clients that connect from anywhere but
    /// 127.0.0.1 and ::1 with Redis's -DENIED explanation, as Redis's
    /// protected mode does [possible values: yes, no]
    #[arg(long, default_value = "yes", value_parser = ["yes", "no"])]
    protected_mode: String,
    /// What a node does with a keyed command for a shard it does not lead:
    /// `forward` it to the leader, except for clients that route by slot
    /// themselves (they asked CLUSTER SLOTS, SHARDS or NODES) which get
    /// -MOVED; `redirect` answers -MOVED to every client, as Redis
    /// Cluster does [possible values: forward, redirect]
    #[arg(long, default_value = "forward", value_parser = ["forward", "redirect"])]
    cluster_mode: String,
    /// Executors (threads) to run, each serving client connections. With
    /// several shards, a new member's key groups are spread over them too,
    /// each executor running its groups with its own log (fixed when the
    /// data directory is made; a later --cores changes the executors
    /// serving clients only); executor 0 also runs the home group and the
    /// peer links. More pays only with CPUs to spare (see
    /// benches/README.md)
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Pin executor k to CPU k (for a machine given to one node; several
    /// nodes on one machine would share the same CPUs) [possible values:
    /// yes, no]
    #[arg(long, default_value = "no", value_parser = ["yes", "no"])]
    pin_cores: String,
    /// Raft groups the key space is spread over, for a new cluster (the
    /// founder's flag; joining members learn it): group k of N holds the
    /// slots from 16384(k-1)/N, each group with its own leader, so leaders
    /// and writes spread over the members. Fixed once the cluster is made.
    /// Experimental above 1: a multi-key command needs its keys in one
    /// group (MGET, DEL, UNLINK and EXISTS are split for plain
    /// clients), and so does a transaction [default: 1]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    shards: Option<u32>,
    /// Members each key group is on, for a new cluster of several shards
    /// (the founder's flag; joining members learn it): the groups are
    /// spread over the members by rendezvous hashing, and move when members
    /// join or leave (a new replica catches up before it votes; the one it
    /// replaces leaves after). A member serves every key all the same,
    /// running a command for a group it does not hold at one that does.
    /// 0 puts every group on every member. Fixed once the cluster is made
    /// [default: 3]
    #[arg(long)]
    replicas: Option<u32>,
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
    /// The most memory the data may use, as Redis's maxmemory with its
    /// noeviction policy: while the process's allocated bytes (INFO's
    /// used_memory) are over it, the leader refuses writes that may add
    /// data (-OOM); reads, DEL and the like still run. A number of bytes,
    /// or with a unit: 100mb, 2gb (1024-based), 100m, 2g (1000-based).
    /// 0: no limit.
    #[arg(long, default_value = "0", value_parser = memory_bytes)]
    maxmemory: u64,
    /// text (one line per event, for people) or json (one JSON object per
    /// line: timestamp, level, target, fields; for log collectors).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Tools: `check` and `dump` read a data directory while no node runs on
/// it and change nothing; `backup` reads a running cluster into a file;
/// `restore` makes a new data directory from one.
#[derive(Debug, clap::Subcommand)]
enum Tool {
    /// Verify every frame of every log segment and every snapshot, and
    /// say whether a start would open the directory (it is opened as a
    /// start would, in memory): records, index ranges and terms per
    /// segment, the last valid offset, and the file and offset of any
    /// damage. Exit status 0: a start would open it; 1: it would refuse;
    /// 2: it could not be read.
    Check {
        /// The data directory (a node's --datadir).
        #[arg(long)]
        datadir: PathBuf,
    },
    /// Back up a running cluster through one member: each group's contents
    /// at one log index (linearizable, like a read), streamed over the
    /// client protocol into FILE with a progress line on stderr, each part
    /// and the whole file checksummed (CRC-32). FILE appears only once
    /// whole. Exit status 0: written; 2: not.
    Backup {
        /// A member's client address (host:port, or :port for this host).
        #[arg(long)]
        from: String,
        /// The backup file to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
        /// The user to AUTH as (with --password).
        #[arg(long)]
        user: Option<String>,
        /// The password to AUTH with, if the cluster requires one.
        #[arg(long)]
        password: Option<String>,
    },
    /// Make a new data directory from a backup file: a one-node cluster
    /// of one shard holding the backup's keys, values and expiries (every
    /// checksum is verified first). Start it with `cashe --id NAME
    /// --datadir DIR ...`; other nodes join it as usual. Exit status 0:
    /// written; 2: not (nothing is left in DIR).
    Restore {
        /// The backup file.
        #[arg(long = "in")]
        input: PathBuf,
        /// The new data directory: must not exist, or be empty.
        #[arg(long)]
        datadir: PathBuf,
        /// The name the restored node will run under (`--id`).
        #[arg(long)]
        id: String,
    },
    /// Print every record of every log segment, one per line: file and
    /// offset, group, and the record (hard states, truncations, entries
    /// with their commands).
    Dump {
        /// The data directory (a node's --datadir).
        #[arg(long)]
        datadir: PathBuf,
    },
}

/// Runs an offline tool; see [`Tool`] for the exit statuses.
fn run_tool(tool: &Tool) -> ExitCode {
    use cashe::runtime::{backup, offline};
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let result = match tool {
        Tool::Check { datadir } => offline::check(datadir).map(|checked| {
            let _ = stdout.write_all(checked.text.as_bytes());
            if checked.sound {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
        Tool::Backup { from, out, user, password } => {
            let options = backup::BackupOptions {
                from: from.clone(),
                out: out.clone(),
                user: user.clone(),
                password: password.clone(),
            };
            backup::backup(&options).map(|done| {
                let _ = writeln!(
                    stdout,
                    "backup: {} written: {} part(s), {} keys, {} bytes of data, CRC {:08x}",
                    out.display(),
                    done.parts,
                    done.keys,
                    done.bytes,
                    done.crc
                );
                ExitCode::SUCCESS
            })
        }
        Tool::Restore { input, datadir, id } => backup::restore(input, datadir).map(|done| {
            let _ = writeln!(
                stdout,
                "restore: {} holds a one-node cluster of {} keys from {} part(s), digest {}\n\
                 start it with: cashe --id {id} --datadir {} --listenaddr ... --raftaddr ...; \
                 other nodes join it with --leaderaddr",
                datadir.display(),
                done.keys,
                done.parts,
                done.digest,
                datadir.display()
            );
            ExitCode::SUCCESS
        }),
        Tool::Dump { datadir } => {
            let mut failed = None;
            let mut emit = |text: String| {
                if failed.is_none() {
                    failed = stdout.write_all(text.as_bytes()).err();
                }
            };
            offline::dump(datadir, &mut emit).map(|()| match failed {
                // A closed pipe (`| head`) is the reader's choice, not a failure.
                Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("cashe: writing the dump: {e}");
                    ExitCode::from(2)
                }
                _ => ExitCode::SUCCESS,
            })
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("cashe: {e}");
        ExitCode::from(2)
    })
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

/// The TLS settings, if the three files are given (all or none).
fn tls(args: &Args) -> Result<Option<TlsSettings>, String> {
    let files = (&args.tls_cert_file, &args.tls_key_file, &args.tls_ca_cert_file);
    let (cert, key, ca) = match files {
        (None, None, None) => {
            if args.tls_listenaddr.is_some() || !args.peer_cert_allowed_cn.is_empty() {
                return Err(
                    "--tls-listenaddr and --peer-cert-allowed-cn need --tls-cert-file, --tls-key-file and \
                     --tls-ca-cert-file"
                        .into(),
                );
            }
            return Ok(None);
        }
        (Some(cert), Some(key), Some(ca)) => (cert.clone(), key.clone(), ca.clone()),
        _ => return Err("TLS needs all of --tls-cert-file, --tls-key-file and --tls-ca-cert-file".into()),
    };
    let files = TlsFiles {
        cert,
        key,
        ca,
        auth_clients: args.tls_auth_clients.parse()?,
        peer_allowed_names: args.peer_cert_allowed_cn.iter().filter(|n| !n.is_empty()).cloned().collect(),
    };
    let settings = TlsSettings::load(&files)?;
    if !settings.own_names.has(&args.id) {
        return Err(format!(
            "the --tls-cert-file {} names {}, not this node's --id {:?}: peers would refuse it (its CN or a \
             DNS SAN must be the --id)",
            files.cert.display(),
            settings.own_names,
            args.id
        ));
    }
    Ok(Some(settings))
}

/// Redis's memory units: `k`, `m`, `g` are powers of 1000, `kb`, `mb`,
/// `gb` powers of 1024 (any case).
fn memory_bytes(text: &str) -> Result<u64, String> {
    let lower = text.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale: u64 = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        unit => return Err(format!("unknown unit {unit:?}: use b, k, kb, m, mb, g or gb")),
    };
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is not a number of bytes"))?;
    number.checked_mul(scale).ok_or_else(|| format!("{text} is too large"))
}

fn config(args: &Args, stop: Arc<AtomicBool>) -> Result<ServerConfig, String> {
    let tls = tls(args)?;
    let tls_client = match &args.tls_listenaddr {
        Some(text) => Some(address("tls-listenaddr", text, None)?),
        None => None,
    };
    if tls.is_some() && tls_client.is_none() {
        // A joining node proves its certificate there: a TLS cluster
        // without TLS client ports could never take a new member.
        return Err("TLS needs a --tls-listenaddr: joins (and TLS clients) come through it".into());
    }
    let plain_client = match args.listenaddr.as_str() {
        "" if tls_client.is_none() => return Err("--listenaddr \"\" needs a --tls-listenaddr".into()),
        "" => None,
        text => Some(address("listenaddr", text, None)?),
    };
    // The directory holds a member's client address (the plain port's, or
    // the TLS port's on a node without a plain one) and its TLS client
    // address, which TLS clients are told.
    let tls_client_advertise = match (&args.advertise_tls_client, &plain_client, &tls_client) {
        (Some(_), _, None) => return Err("--advertise-tls-client needs a --tls-listenaddr".into()),
        (_, _, None) => None,
        (Some(advertised), _, Some(_)) => Some(advertised.clone()),
        (None, None, Some((_, advertised))) => {
            Some(args.advertise_client.clone().unwrap_or(advertised.clone()))
        }
        (None, Some(_), Some((_, advertised))) => Some(advertised.clone()),
    };
    let client_advertise = match (&args.advertise_client, &plain_client, &tls_client_advertise) {
        (Some(advertised), _, _) => advertised.clone(),
        (None, Some((_, advertised)), _) | (None, None, Some(advertised)) => advertised.clone(),
        (None, None, None) => return Err("no client port".into()),
    };
    let (raft_bind, raft_advertise) = address("raftaddr", &args.raftaddr, args.advertise_raft.as_deref())?;
    let metrics_bind = match &args.metrics_addr {
        Some(text) => Some(address("metrics-addr", text, None)?.0),
        None => None,
    };
    if args.id.is_empty() || args.id.contains(char::is_whitespace) {
        return Err(format!("--id {:?}: a name must be non-empty and without spaces", args.id));
    }
    if args.election_ticks <= args.heartbeat_ticks || args.heartbeat_ticks == 0 || args.tick_ms == 0 {
        return Err("need --tick-ms > 0 and 0 < --heartbeat-ticks < --election-ticks".into());
    }
    let raft = cashe::raft::Config {
        heartbeat_ticks: args.heartbeat_ticks,
        election_ticks: args.election_ticks,
        read_lease: args.read_lease == "on",
        clock_drift_percent: args.clock_drift_percent,
        ..cashe::raft::Config::new(cashe::raft::NodeId(0))
    };
    if let Err(e) = raft.validate() {
        return Err(format!(
            "--election-ticks {}, --read-lease {}, --clock-drift-percent {}: {e}",
            args.election_ticks, args.read_lease, args.clock_drift_percent
        ));
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
        client_bind: plain_client.map(|(bind, _)| bind),
        tls_client_bind: tls_client.map(|(bind, _)| bind),
        metrics_bind,
        maxmemory: args.maxmemory,
        used_memory,
        raft_bind,
        client_advertise,
        tls_client_advertise,
        raft_advertise,
        join_via,
        datadir: args.datadir.clone().unwrap_or_else(|| PathBuf::from("./data").join(&args.id)),
        tick: Duration::from_millis(args.tick_ms),
        heartbeat_ticks: args.heartbeat_ticks,
        election_ticks: args.election_ticks,
        read_lease: args.read_lease == "on",
        clock_drift_percent: args.clock_drift_percent,
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
        cluster_secret: cluster_secret(args)?,
        peer_connections_max: args.max_peer_connections.max(1),
        protected_mode: args.protected_mode == "yes",
        cores: args.cores.max(1),
        pin_cores: args.pin_cores == "yes",
        shards: args.shards,
        replicas: args.replicas,
        cluster_mode: match args.cluster_mode.as_str() {
            "redirect" => cashe::node::ClusterMode::Redirect,
            _ => cashe::node::ClusterMode::Forward,
        },
        tls: tls.map(Arc::new),
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

/// `--cluster-secret`, `--cluster-secret-file` or `CASHE_CLUSTER_SECRET`.
fn cluster_secret(args: &Args) -> Result<Option<ClusterSecret>, String> {
    let secret = match (&args.cluster_secret, &args.cluster_secret_file) {
        (Some(secret), _) => Some(secret.clone().into_bytes()),
        (None, Some(path)) => {
            let mut bytes =
                std::fs::read(path).map_err(|e| format!("--cluster-secret-file {}: {e}", path.display()))?;
            if bytes.ends_with(b"\n") {
                bytes.pop();
            }
            Some(bytes)
        }
        (None, None) => std::env::var("CASHE_CLUSTER_SECRET").ok().map(String::into_bytes),
    };
    secret.map(|s| ClusterSecret::new(&s).map_err(|e| format!("--cluster-secret: {e}"))).transpose()
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
    if let Some(tool) = &args.tool {
        return run_tool(tool);
    }
    let level = match args.log_level.parse::<tracing::Level>() {
        Ok(level) => level,
        Err(_) => {
            eprintln!("cashe: --log-level {:?}: use error, warn, info, debug or trace", args.log_level);
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_ansi(false);
    match args.log_format.as_str() {
        "json" => logs.json().init(),
        _ => logs.init(),
    }
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
    let placement = cashe::runtime::server::placement(0, config.pin_cores);
    let outcome = glommio::LocalExecutorBuilder::new(placement).name("cashe").spawn(move || serve(config));
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
