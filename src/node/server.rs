//! Connection and server commands that never touch the key space: PING,
//! ECHO, QUIT, SELECT, INFO, ROLE, TIME, COMMAND, CONFIG GET, CLIENT and
//! HELLO. Answered at once by the node that received them, from its own
//! state: nothing here goes through the log, so two nodes may answer INFO or
//! ROLE differently, and nothing here may change the key space.
//!
//! Replies and error texts are Redis 7.0's, including its arity errors for
//! subcommands (`'client|setname'`) and its unknown-subcommand text;
//! `tests/server.rs` compares them with a real redis-server. Intentional
//! differences:
//! - one database: SELECT accepts only 0 (CONFIG GET databases says 1);
//! - users are `--aclfile`'s, or only `default`, whose password is
//!   `--requirepass` (none: it takes any password, as Redis's `nopass`
//!   default user); see `acl` for the rules and the ACL command. AUTH,
//!   HELLO … AUTH, NOAUTH, WRONGPASS and NOPERM as Redis 7.0 words them;
//!   INFO stats counts refusals as Redis 7.2's `acl_access_denied_auth`,
//!   `acl_access_denied_cmd` and `acl_access_denied_key`;
//! - CONFIG is read-only, and CONFIG GET answers in table order (Redis: in
//!   hash-table order);
//! - COMMAND gives names, arity, flags and key positions but no key specs or
//!   tips; COMMAND DOCS is empty;
//! - CLIENT INFO and LIST know no addresses, buffers or memory (`addr=?`);
//! - INFO chooses sections as Redis 7.0's `genRedisInfoString` does (see
//!   [`Section`]) and counts the command that asks
//!   (total_commands_processed). What cashe cannot know is left out, never
//!   made up:
//!   - memory: `used_memory` (the bytes the process has allocated and not
//!     freed, as the shell's allocator counts them, `Node::set_memory`),
//!     `maxmemory` (`--maxmemory`, 0 without) and `maxmemory_policy`
//!     (noeviction), but none of used_memory's derived fields (peak,
//!     overhead, dataset, allocator, fragmentation, Lua, scripts).
//!     `used_memory_rss` and `total_system_memory` are the shell's
//!     readings (Linux `/proc`, refreshed about twice a second), absent
//!     when it has none;
//!   - cpu: the shell's readings of `/proc/self/stat` and
//!     `/proc/thread-self/stat` (10 ms resolution), absent without them;
//!   - commandstats: `calls`, `rejected_calls` and `failed_calls` of the
//!     commands this node answered, but no `usec` or `usec_per_call`: the
//!     node's time is the shell's clock per input, not a measure of a
//!     command's work. A command counts when its reply leaves (a write
//!     once applied); an error reply before it ran (wrong arity, over the
//!     command size limit, `CLUSTERDOWN`, `TRYAGAIN`) is a rejected call,
//!     any other error a failed call. A command queued in MULTI counts as
//!     `exec`'s call, not its own; the errors inside EXEC's reply count in
//!     errorstats, as in Redis. With several shards the member's router
//!     counts them, by the same rules, from what its clients sent and got
//!     (its groups' nodes each see part of it, and also what the router
//!     sends on its own behalf), and gives its counts to the home group's
//!     INFO; `total_commands_processed` and `total_error_replies` too;
//!   - errorstats: error replies this node sent, by their first word, as
//!     Redis groups them; errors the protocol layer answers (a malformed
//!     request) never reach the node and are not counted;
//!   - latencystats: empty, as Redis with `latency-tracking no`;
//!   - cluster: `cluster_enabled:1` (cashe speaks Redis Cluster, see `slots`);
//!     modules: empty.
//!
//! Time is the node's `now_ms`; nothing here reads a clock or iterates a
//! hash map. Per-connection state lives in [`Clients`]: the node calls
//! [`Clients::received`] for every command it is given, in order,
//! [`Clients::replied`] for every reply it releases (in the same order, one
//! per command), and `disconnected` when the shell says the connection
//! closed.

use super::metrics::{Family, Kind};
use super::{ConnId, Node, Transport};
use crate::kv::{self, Access};
use crate::protocol::{Limits, Protocol, Reply};
use crate::raft::{NodeId, Role};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::{Display, Write};
use std::sync::OnceLock;

/// Counters the shell keeps (the core cannot see fsyncs or wall-clock
/// latencies); the shell refreshes them and INFO prints them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ShellStats {
    /// `(field, value)` pairs for INFO's `stats` section, in order.
    pub stats: Vec<(String, String)>,
    /// `(field, value)` pairs for INFO's `server` section, in order.
    pub server: Vec<(String, String)>,
    /// `(name, value)` pairs CONFIG GET answers besides the node's defaults,
    /// which a pair of the same name replaces (`maxclients`,
    /// `proto-max-bulk-len`, `port`, ... as the shell enforces them).
    pub config: Vec<(String, String)>,
    /// The process's resident set size in bytes (INFO's `used_memory_rss`),
    /// if the shell could read it.
    pub rss_bytes: Option<u64>,
    /// The machine's memory in bytes (INFO's `total_system_memory`), if known.
    pub system_memory_bytes: Option<u64>,
    /// CPU time the process used (INFO's `cpu` section), if known.
    pub cpu: Option<CpuTimes>,
}

/// CPU time used, in microseconds, as the shell read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuTimes {
    pub user_us: u64,
    pub system_us: u64,
    /// The thread that runs the node and its connections.
    pub main_thread_user_us: u64,
    pub main_thread_system_us: u64,
}

/// A command as commandstats names it: `get`, or `config|get` for a
/// subcommand.
pub(super) type CommandName = (&'static str, Option<&'static str>);

/// commandstats' counters of one command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct CommandCounts {
    calls: u64,
    rejected_calls: u64,
    failed_calls: u64,
}

/// Distinct error codes errorstats keeps (Redis's `ERROR_STATS_NUMBER`);
/// the node's error codes are its own texts', far fewer than this.
const ERROR_CODES_MAX: usize = 128;

/// What commandstats, errorstats and INFO's command totals count: of the
/// commands a node answered, or (with several shards) of those a member's
/// router answered its clients (`Router`, whose groups' nodes also answer
/// the commands it sends on its own behalf).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct CommandStats {
    /// Commands ever received.
    commands_processed: u64,
    /// commandstats, by command.
    commands: BTreeMap<CommandName, CommandCounts>,
    /// errorstats: error replies by their code (the first word).
    errors: BTreeMap<String, u64>,
    /// Every error reply sent (INFO's total_error_replies).
    error_replies: u64,
}

impl CommandStats {
    /// A command arrived.
    pub(super) fn received(&mut self) {
        self.commands_processed += 1;
    }

    /// `reply` leaves, answering `command` (`None`: one cashe does not
    /// know): commandstats and errorstats count it (see the module docs).
    pub(super) fn replied(&mut self, command: Option<CommandName>, reply: &Reply) {
        self.count_errors(reply);
        let Some(command) = command else { return };
        let counts = self.commands.entry(command).or_default();
        match reply {
            // Run by EXEC, where it counts.
            Reply::Simple(status) if status == "QUEUED" => {}
            Reply::Error(text) if rejected(text) => counts.rejected_calls += 1,
            Reply::Error(_) => {
                counts.calls += 1;
                counts.failed_calls += 1;
            }
            _ => counts.calls += 1,
        }
        if *counts == CommandCounts::default() {
            self.commands.remove(&command);
        }
    }

    /// The counts as metric families: commands by name (calls, rejected,
    /// failed, as commandstats), error replies by code (as errorstats),
    /// and the totals.
    pub(super) fn families(&self) -> Vec<Family> {
        let mut calls = Family::new("cashe_commands_total", Kind::Counter, "Commands answered, by command.");
        let mut rejected = Family::new(
            "cashe_commands_rejected_total",
            Kind::Counter,
            "Commands refused before they ran (arity, limits, CLUSTERDOWN, TRYAGAIN), by command.",
        );
        let mut failed = Family::new(
            "cashe_commands_failed_total",
            Kind::Counter,
            "Commands that ran and failed, by command.",
        );
        for ((name, sub), counts) in &self.commands {
            let command = match sub {
                Some(sub) => format!("{name}|{sub}"),
                None => name.to_string(),
            };
            calls.add(&[("command", &command)], counts.calls as f64);
            rejected.add(&[("command", &command)], counts.rejected_calls as f64);
            failed.add(&[("command", &command)], counts.failed_calls as f64);
        }
        let mut errors = Family::new(
            "cashe_errors_total",
            Kind::Counter,
            "Error replies, by their first word (as errorstats).",
        );
        for (code, count) in &self.errors {
            errors.add(&[("code", code)], *count as f64);
        }
        let received = self.commands_processed as f64;
        let replies = self.error_replies as f64;
        vec![
            Family::single("cashe_commands_received_total", Kind::Counter, "Commands received.", received),
            calls,
            rejected,
            failed,
            Family::single("cashe_error_replies_total", Kind::Counter, "Error replies sent.", replies),
            errors,
        ]
    }

    /// Counts the error `reply` is, or the errors an EXEC reply holds.
    fn count_errors(&mut self, reply: &Reply) {
        match reply {
            Reply::Error(text) => {
                self.error_replies += 1;
                let code = error_code(text);
                if let Some(count) = self.errors.get_mut(code) {
                    *count += 1;
                } else if self.errors.len() < ERROR_CODES_MAX {
                    self.errors.insert(code.to_string(), 1);
                }
            }
            Reply::Array(Some(items)) => {
                for item in items.iter().filter(|item| matches!(item, Reply::Error(_))) {
                    self.count_errors(item);
                }
            }
            _ => {}
        }
    }
}

/// What INFO reports of a member of several shards as a whole, which its
/// home group's node alone does not know: handed over by the router when it
/// routes an INFO ([`Node::set_router_info`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct RouterInfo {
    /// One line per group of the member (`INFO cluster`).
    pub(super) group_lines: Vec<(String, String)>,
    /// What the router answered its clients (commandstats, errorstats,
    /// the command totals).
    pub(super) command_stats: CommandStats,
    /// The keys of every key group this member holds (`INFO keyspace`).
    pub(super) keyspace: kv::KeyCounts,
}

/// Per-connection state, and the counters INFO reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Clients {
    connections: BTreeMap<ConnId, Connection>,
    /// Connections ever seen (INFO's total_connections_received).
    connections_received: u64,
    /// What this node answered.
    stats: CommandStats,
    /// AUTH and HELLO AUTH attempts refused (INFO's acl_access_denied_auth).
    auth_failures: u64,
    /// Commands refused by the ACL (INFO's acl_access_denied_cmd).
    pub(super) denied_commands: u64,
    /// Commands refused for a key (INFO's acl_access_denied_key).
    pub(super) denied_keys: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Connection {
    /// Never empty: CLIENT SETNAME "" clears it, as in Redis.
    name: Option<Vec<u8>>,
    /// AUTH (or HELLO … AUTH) succeeded on it.
    authenticated: bool,
    /// Its user's name: `default` until AUTH names another.
    user: Vec<u8>,
    first_command_ms: u64,
    last_command_ms: u64,
    /// How it came (the shell says at `Node::connected`; plain if never said).
    transport: Transport,
    /// The commands received and not answered yet, in order (`None`: not a
    /// command cashe knows); their replies leave in the same order.
    unanswered: VecDeque<Option<CommandName>>,
}

impl Clients {
    /// `conn` was heard from at `now_ms` (it opened, or sent a command); a
    /// connection is known from then until `disconnected`.
    pub(super) fn seen(&mut self, conn: ConnId, now_ms: u64) {
        let connection = self.connections.entry(conn).or_insert_with(|| {
            self.connections_received += 1;
            Connection {
                name: None,
                authenticated: false,
                user: b"default".to_vec(),
                first_command_ms: now_ms,
                last_command_ms: now_ms,
                transport: Transport::Plain,
                unanswered: VecDeque::new(),
            }
        });
        connection.last_command_ms = now_ms;
    }

    /// The command `args` (its name upper-cased in `name`) arrived on
    /// `conn`; exactly one reply to it is to leave, in order ([`Clients::replied`]).
    pub(super) fn received(&mut self, conn: ConnId, name: &[u8], args: &[Vec<u8>], now_ms: u64) {
        self.seen(conn, now_ms);
        // A command, not a connection's opening (which is also `seen`).
        self.stats.received();
        let command = command_name(name, args);
        self.connection(conn).unanswered.push_back(command);
    }

    /// A reply leaves for `conn`, answering its oldest unanswered command:
    /// commandstats and errorstats count it (see the module docs).
    pub(super) fn replied(&mut self, conn: ConnId, reply: &Reply) {
        let command = self.connections.get_mut(&conn).and_then(|c| c.unanswered.pop_front()).flatten();
        self.stats.replied(command, reply);
    }

    pub(super) fn disconnected(&mut self, conn: ConnId) {
        self.connections.remove(&conn);
    }

    /// The connection came over `transport` (it is known: `seen` first).
    pub(super) fn opened_over(&mut self, conn: ConnId, transport: Transport) {
        self.connection(conn).transport = transport;
    }

    /// How `conn` came (plain for an unknown one).
    pub(super) fn transport_of(&self, conn: ConnId) -> Transport {
        self.connections.get(&conn).map_or(Transport::Plain, |c| c.transport)
    }

    /// The name of the user `conn` runs as (`default` for an unknown one).
    pub(super) fn user_of(&self, conn: ConnId) -> &[u8] {
        self.connections.get(&conn).map_or(b"default", |c| &c.user)
    }

    fn connection(&mut self, conn: ConnId) -> &mut Connection {
        self.connections.get_mut(&conn).expect("server_command calls seen first")
    }
}

/// The server commands, for dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerCommand {
    Auth,
    Ping,
    Echo,
    Quit,
    Select,
    Info,
    Role,
    Time,
    Command,
    Config,
    Client,
    Hello,
    Acl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientSubcommand {
    SetName,
    GetName,
    Id,
    Info,
    List,
    SetInfo,
    Help,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConfigSubcommand {
    Get,
    Set,
    ResetStat,
    Rewrite,
    Help,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AclSubcommand {
    Cat,
    DelUser,
    Help,
    List,
    Load,
    Save,
    SetUser,
    Users,
    WhoAmI,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommandSubcommand {
    Count,
    Info,
    Docs,
    List,
    GetKeys,
    Help,
}

/// One row of a command table: Redis's lower-case name, arity (`n`: exactly
/// n arguments counting the name, and the container's name for a
/// subcommand; `-n`: at least n), and what COMMAND INFO reports.
struct Spec<T> {
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    categories: &'static [&'static str],
    which: T,
}

const fn spec<T>(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    categories: &'static [&'static str],
    which: T,
) -> Spec<T> {
    Spec { name, arity, flags, categories, which }
}

const FAST: &[&str] = &["loading", "stale", "fast"];
const CONNECTION: &[&str] = &["@fast", "@connection"];
const CLIENT_FLAGS: &[&str] = &["noscript", "loading", "stale"];
const ADMIN_FLAGS: &[&str] = &["admin", "noscript", "loading", "stale"];
const SLOW_CONNECTION: &[&str] = &["@slow", "@connection"];
const ADMIN: &[&str] = &["@admin", "@slow", "@dangerous"];

/// Flags and categories as Redis 7.0's COMMAND INFO gives them. `None`:
/// answered elsewhere (READONLY and READWRITE by the node, CLUSTER by the
/// cluster commands), listed here for COMMAND only.
const COMMANDS: &[Spec<Option<ServerCommand>>] = &[
    spec(
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        CONNECTION,
        Some(ServerCommand::Auth),
    ),
    spec("ping", -1, &["fast"], CONNECTION, Some(ServerCommand::Ping)),
    spec("echo", 2, &["fast"], CONNECTION, Some(ServerCommand::Echo)),
    spec(
        "quit",
        -1,
        &["allow_busy", "noscript", "loading", "stale", "fast", "no_auth"],
        CONNECTION,
        Some(ServerCommand::Quit),
    ),
    spec("select", 2, FAST, CONNECTION, Some(ServerCommand::Select)),
    spec("info", -1, &["loading", "stale"], &["@slow", "@dangerous"], Some(ServerCommand::Info)),
    spec(
        "role",
        1,
        &["noscript", "loading", "stale", "fast"],
        &["@admin", "@fast", "@dangerous"],
        Some(ServerCommand::Role),
    ),
    spec("time", 1, FAST, &["@fast"], Some(ServerCommand::Time)),
    spec("command", -1, &["loading", "stale"], SLOW_CONNECTION, Some(ServerCommand::Command)),
    spec("config", -2, &[], &["@slow"], Some(ServerCommand::Config)),
    spec("client", -2, &[], &["@slow"], Some(ServerCommand::Client)),
    spec(
        "hello",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        CONNECTION,
        Some(ServerCommand::Hello),
    ),
    spec("acl", -2, &[], &["@slow"], Some(ServerCommand::Acl)),
    spec("readonly", 1, FAST, CONNECTION, None),
    spec("readwrite", 1, FAST, CONNECTION, None),
    spec("cluster", -2, &[], &["@slow"], None),
];

const CLIENT_SUBCOMMANDS: &[Spec<ClientSubcommand>] = &[
    spec("setname", 3, CLIENT_FLAGS, SLOW_CONNECTION, ClientSubcommand::SetName),
    spec("getname", 2, CLIENT_FLAGS, SLOW_CONNECTION, ClientSubcommand::GetName),
    spec("id", 2, CLIENT_FLAGS, SLOW_CONNECTION, ClientSubcommand::Id),
    spec("info", 2, CLIENT_FLAGS, SLOW_CONNECTION, ClientSubcommand::Info),
    spec("list", -2, ADMIN_FLAGS, &["@admin", "@slow", "@dangerous", "@connection"], ClientSubcommand::List),
    // Redis 7.2's; redis-py sends it on connect.
    spec("setinfo", 4, CLIENT_FLAGS, SLOW_CONNECTION, ClientSubcommand::SetInfo),
    spec("help", 2, &["loading", "stale"], SLOW_CONNECTION, ClientSubcommand::Help),
];

const CONFIG_SUBCOMMANDS: &[Spec<ConfigSubcommand>] = &[
    spec("get", -3, ADMIN_FLAGS, ADMIN, ConfigSubcommand::Get),
    spec("set", -4, ADMIN_FLAGS, ADMIN, ConfigSubcommand::Set),
    spec("resetstat", 2, ADMIN_FLAGS, ADMIN, ConfigSubcommand::ResetStat),
    spec("rewrite", 2, ADMIN_FLAGS, ADMIN, ConfigSubcommand::Rewrite),
    spec("help", 2, &["loading", "stale"], &["@slow"], ConfigSubcommand::Help),
];

const ACL_ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const ACL_SUBCOMMANDS: &[Spec<AclSubcommand>] = &[
    spec("cat", -2, &["noscript", "loading", "stale"], &["@slow"], AclSubcommand::Cat),
    spec("deluser", -3, ACL_ADMIN, ADMIN, AclSubcommand::DelUser),
    spec("help", 2, &["loading", "stale"], &["@slow"], AclSubcommand::Help),
    spec("list", 2, ACL_ADMIN, ADMIN, AclSubcommand::List),
    spec("load", 2, ACL_ADMIN, ADMIN, AclSubcommand::Load),
    spec("save", 2, ACL_ADMIN, ADMIN, AclSubcommand::Save),
    spec("setuser", -3, ACL_ADMIN, ADMIN, AclSubcommand::SetUser),
    spec("users", 2, ACL_ADMIN, ADMIN, AclSubcommand::Users),
    spec("whoami", 2, &["noscript", "loading", "stale"], &["@slow"], AclSubcommand::WhoAmI),
];

const COMMAND_SUBCOMMANDS: &[Spec<CommandSubcommand>] = &[
    spec("count", 2, &["loading", "stale"], SLOW_CONNECTION, CommandSubcommand::Count),
    spec("info", -2, &["loading", "stale"], SLOW_CONNECTION, CommandSubcommand::Info),
    spec("docs", -2, &["loading", "stale"], SLOW_CONNECTION, CommandSubcommand::Docs),
    spec("list", -2, &["loading", "stale"], SLOW_CONNECTION, CommandSubcommand::List),
    spec("getkeys", -4, &["loading", "stale"], SLOW_CONNECTION, CommandSubcommand::GetKeys),
    spec("help", 2, &["loading", "stale"], SLOW_CONNECTION, CommandSubcommand::Help),
];

/// What this node says it is, so client libraries enable Redis 7.0 features.
const REDIS_VERSION: &str = "7.0.0";
/// At most this many bytes of an argument are quoted in an error (Redis's `%.128s`).
const QUOTED_BYTES_MAX: usize = 128;
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
const BAD_CLIENT_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";
/// Redis's reply to a command that needs an authenticated connection.
pub(super) const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const AUTH_WITHOUT_PASSWORD: &str =
    "ERR AUTH <password> called without any password configured for the default \
                                     user. Are you sure your configuration is correct?";
const HELLO_NOAUTH: &str =
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                            HELLO AUTH <user> <pass> option can be used to authenticate the client and \
                            select the RESP protocol version at the same time";

impl Node {
    /// Answers a connection or server command; `None` for anything else.
    /// `name` is the command name upper-cased.
    pub(super) fn server_command(&mut self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> Option<Reply> {
        let spec = COMMANDS.iter().find(|spec| name.eq_ignore_ascii_case(spec.name.as_bytes()))?;
        let which = spec.which?;
        if !arity_allows(spec.arity, args.len()) {
            return Some(wrong_arity(spec.name));
        }
        let reply = match which {
            ServerCommand::Auth => self.on_auth(conn, args),
            ServerCommand::Ping => on_ping(args),
            ServerCommand::Echo => Reply::bulk(args[1].clone()),
            ServerCommand::Quit => Reply::ok(),
            ServerCommand::Select => on_select(&args[1]),
            ServerCommand::Info => self.on_info(&args[1..]),
            ServerCommand::Role => self.on_role(),
            ServerCommand::Time => self.on_time(),
            ServerCommand::Command => on_command(args),
            ServerCommand::Config => self.on_config(args),
            ServerCommand::Client => self.on_client(conn, args),
            ServerCommand::Hello => self.on_hello(conn, args),
            ServerCommand::Acl => match subcommand(ACL_SUBCOMMANDS, "acl", args) {
                Ok(which) => self.on_acl(conn, which, args),
                Err(reply) => reply,
            },
        };
        Some(reply)
    }

    /// The sections [`Section::chosen`] picks, in Redis's order, each
    /// under its `# Title`, separated by blank lines.
    fn on_info(&self, names: &[Vec<u8>]) -> Reply {
        let mut text = String::new();
        for section in Section::chosen(names) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            write!(text, "# {}\r\n", section.title()).expect("writing to a String cannot fail");
            let fields = match section {
                Section::Server => self.info_server(),
                Section::Clients => self.info_clients(),
                Section::Memory => self.info_memory(),
                Section::Persistence => self.info_persistence(),
                Section::Stats => self.info_stats(),
                Section::Replication => self.info_replication(),
                Section::Cpu => self.info_cpu(),
                Section::Commandstats => self.info_commandstats(),
                Section::Errorstats => self.info_errorstats(),
                Section::Cluster => {
                    let mut fields = Fields::default();
                    fields.add("cluster_enabled", 1);
                    fields.extend(self.group_lines());
                    fields
                }
                Section::Keyspace => self.info_keyspace(),
                Section::Modules | Section::Latencystats => Fields::default(),
            };
            fields.render(&mut text);
        }
        Reply::text(text)
    }

    fn info_server(&self) -> Fields {
        let mut fields = Fields::default();
        fields.add("redis_version", REDIS_VERSION);
        fields.add("redis_mode", "cluster");
        fields.add("cashe_version", env!("CARGO_PKG_VERSION"));
        fields.add("arch_bits", usize::BITS);
        fields.add("server_time_usec", self.now_ms.saturating_mul(1000));
        fields.extend(&self.shell_stats.server);
        fields
    }

    fn info_clients(&self) -> Fields {
        let mut fields = Fields::default();
        fields.add("connected_clients", self.clients.connections.len());
        fields.add("cluster_connections", 0);
        fields.add("maxclients", self.config_value("maxclients").unwrap_or_default());
        // This node's clients waiting in BLPOP and the like.
        let blocked: std::collections::BTreeSet<_> = self.waiting_connections().collect();
        fields.add("blocked_clients", blocked.len());
        fields.add("tracking_clients", 0);
        fields
    }

    /// Every write is in the Raft log, fsynced before it is acknowledged:
    /// an always-fsynced append-only file, never a background save.
    fn info_persistence(&self) -> Fields {
        let mut fields = Fields::default();
        fields.add("loading", 0);
        fields.add("async_loading", 0);
        fields.add("rdb_changes_since_last_save", 0);
        fields.add("rdb_bgsave_in_progress", 0);
        fields.add("rdb_last_bgsave_status", "ok");
        fields.add("aof_enabled", 1);
        fields.add("aof_rewrite_in_progress", 0);
        fields.add("aof_rewrite_scheduled", 0);
        fields.add("aof_last_bgrewrite_status", "ok");
        fields.add("aof_last_write_status", "ok");
        fields.add("raft_durable_index", self.raft.durable_index());
        fields.add("raft_snapshot_index", self.raft.snapshot_index());
        // The log keeps some entries below the snapshot for followers a
        // little behind: it starts after this index.
        fields.add("raft_log_start_index", self.raft.log().snapshot_index());
        fields.add("raft_last_index", self.raft.log().last_index());
        fields
    }

    /// What the node and its shell know (see the module docs for what is left out).
    fn info_memory(&self) -> Fields {
        let mut fields = Fields::default();
        let (used, _) = self.memory;
        if used > 0 {
            fields.add("used_memory", used);
            fields.add("used_memory_human", bytes_to_human(used));
        }
        if let Some(rss) = self.shell_stats.rss_bytes {
            fields.add("used_memory_rss", rss);
            fields.add("used_memory_rss_human", bytes_to_human(rss));
        }
        if let Some(total) = self.shell_stats.system_memory_bytes {
            fields.add("total_system_memory", total);
            fields.add("total_system_memory_human", bytes_to_human(total));
        }
        let maxmemory = self.config_value("maxmemory").unwrap_or_default();
        let maxmemory_human = bytes_to_human(maxmemory.parse().unwrap_or(0));
        fields.add("maxmemory", maxmemory);
        fields.add("maxmemory_human", maxmemory_human);
        fields.add("maxmemory_policy", self.config_value("maxmemory-policy").unwrap_or_default());
        fields
    }

    /// Redis's `%ld.%06ld` seconds; cashe starts no child processes.
    fn info_cpu(&self) -> Fields {
        let mut fields = Fields::default();
        let Some(cpu) = self.shell_stats.cpu else { return fields };
        let seconds = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        fields.add("used_cpu_sys", seconds(cpu.system_us));
        fields.add("used_cpu_user", seconds(cpu.user_us));
        fields.add("used_cpu_sys_children", seconds(0));
        fields.add("used_cpu_user_children", seconds(0));
        fields.add("used_cpu_sys_main_thread", seconds(cpu.main_thread_system_us));
        fields.add("used_cpu_user_main_thread", seconds(cpu.main_thread_user_us));
        fields
    }

    /// The counts INFO gives: the router's with several shards
    /// ([`Node::set_router_info`]), else this node's own.
    fn command_stats(&self) -> &CommandStats {
        self.router_info.as_ref().map_or(&self.clients.stats, |info| &info.command_stats)
    }

    /// This node's own counts (with one shard, the member's).
    pub(super) fn own_command_stats(&self) -> &CommandStats {
        &self.clients.stats
    }

    /// Client connections open.
    pub(super) fn client_count(&self) -> usize {
        self.clients.connections.len()
    }

    /// What the next INFO reports of the member as a whole (several
    /// shards).
    pub(super) fn set_router_info(&mut self, info: RouterInfo) {
        self.router_info = Some(info);
    }

    /// INFO cluster's line per group of the member; none with one group.
    pub(super) fn group_lines(&self) -> &[(String, String)] {
        self.router_info.as_ref().map_or(&[], |info| &info.group_lines)
    }

    fn info_commandstats(&self) -> Fields {
        let mut fields = Fields::default();
        for ((name, sub), counts) in &self.command_stats().commands {
            let name = match sub {
                Some(sub) => format!("cmdstat_{name}|{sub}"),
                None => format!("cmdstat_{name}"),
            };
            let CommandCounts { calls, rejected_calls, failed_calls } = counts;
            fields.add(
                &name,
                format!("calls={calls},rejected_calls={rejected_calls},failed_calls={failed_calls}"),
            );
        }
        fields
    }

    fn info_errorstats(&self) -> Fields {
        let mut fields = Fields::default();
        for (code, count) in &self.command_stats().errors {
            fields.add(&format!("errorstat_{code}"), format!("count={count}"));
        }
        fields
    }

    fn info_stats(&self) -> Fields {
        let mut fields = Fields::default();
        fields.add("total_connections_received", self.clients.connections_received);
        fields.add("total_commands_processed", self.command_stats().commands_processed);
        fields.add("total_error_replies", self.command_stats().error_replies);
        fields.add("acl_access_denied_auth", self.clients.auth_failures);
        fields.add("acl_access_denied_cmd", self.clients.denied_commands);
        fields.add("acl_access_denied_key", self.clients.denied_keys);
        fields.add("cashe_pending_writes", self.writes.len());
        fields.add("cashe_pending_reads", self.reads.len() + self.ready_reads.len());
        fields.add("cashe_forwarded_writes", self.forwarded.len());
        fields.extend(&self.shell_stats.stats);
        fields
    }

    fn info_replication(&self) -> Fields {
        let mut fields = Fields::default();
        let leader = self.raft.leader();
        let progress = self.raft.progress();
        if self.raft.is_leader() {
            fields.add("role", "master");
            fields.add("connected_slaves", progress.len());
        } else {
            fields.add("role", "slave");
            let (host, port) = match leader {
                Some(id) => self.member_host_port(id),
                None => (String::new(), 0),
            };
            fields.add("master_host", host);
            fields.add("master_port", port);
            fields.add("master_link_status", if leader.is_some() { "up" } else { "down" });
        }
        fields.add("master_repl_offset", self.raft.applied());
        fields.add("raft_id", self.raft.id());
        fields.add("raft_role", role_name(self.raft.role()));
        fields.add("raft_term", self.raft.term());
        fields.add("raft_leader", leader.map(|id| self.member_name(id)).unwrap_or_default());
        fields.add("raft_commit_index", self.raft.commit());
        fields.add("raft_applied_index", self.raft.applied());
        let membership = self.raft.membership();
        for (k, id) in membership.members().enumerate() {
            let role = if membership.is_voter(id) { "voter" } else { "learner" };
            let mut line = format!("name={},id={id},role={role}", self.member_name(id));
            // Only the leader knows match indexes; its own is what it has made durable.
            let match_index = match progress.get(&id) {
                Some(follower) => Some(follower.match_index),
                None if self.raft.is_leader() && id == self.raft.id() => Some(self.raft.durable_index()),
                None => None,
            };
            if let Some(index) = match_index {
                write!(line, ",match_index={index}").expect("writing to a String cannot fail");
            }
            fields.add(&format!("member{k}"), line);
        }
        fields
    }

    fn info_keyspace(&self) -> Fields {
        let mut fields = Fields::default();
        let counts =
            self.router_info.as_ref().map_or_else(|| self.store.key_counts(self.now_ms), |i| i.keyspace);
        if counts.keys > 0 {
            fields.add("db0", format!("keys={},expires={},avg_ttl=0", counts.keys, counts.expires));
        }
        fields
    }

    /// Leader: `[master, applied, [[host, port, match index]...]]` (the
    /// inner values bulk strings, as Redis sends them). Others:
    /// `[slave, leader host, leader port, connected|connect, applied]`.
    fn on_role(&self) -> Reply {
        let applied = self.raft.applied().0;
        if self.raft.is_leader() {
            let followers = self
                .raft
                .progress()
                .into_iter()
                .map(|(id, progress)| {
                    let (host, port) = self.member_host_port(id);
                    let match_index = progress.match_index.to_string();
                    Reply::Array(Some(vec![
                        Reply::bulk(host),
                        Reply::bulk(port.to_string()),
                        Reply::bulk(match_index),
                    ]))
                })
                .collect();
            return Reply::Array(Some(vec![
                Reply::bulk("master"),
                integer(applied),
                Reply::Array(Some(followers)),
            ]));
        }
        let ((host, port), state) = match self.raft.leader() {
            Some(id) => (self.member_host_port(id), "connected"),
            None => (("?".to_string(), 0), "connect"),
        };
        Reply::Array(Some(vec![
            Reply::bulk("slave"),
            Reply::bulk(host),
            Reply::Integer(i64::from(port)),
            Reply::bulk(state),
            integer(applied),
        ]))
    }

    /// A member's client address split into host and port; its name and
    /// port 0 while the address is unknown.
    fn member_host_port(&self, id: NodeId) -> (String, u16) {
        let split = |address: String| {
            let (host, port) = address.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.to_string(), port.parse().ok()?))
        };
        self.member_client_addr(id).and_then(split).unwrap_or_else(|| (self.member_name(id), 0))
    }

    fn on_time(&self) -> Reply {
        let seconds = self.now_ms / 1000;
        let microseconds = self.now_ms % 1000 * 1000;
        Reply::Array(Some(vec![Reply::bulk(seconds.to_string()), Reply::bulk(microseconds.to_string())]))
    }

    fn on_config(&self, args: &[Vec<u8>]) -> Reply {
        let refused = |what: &str| Reply::Error(format!("ERR CONFIG {what} is not supported by cashe"));
        match subcommand(CONFIG_SUBCOMMANDS, "config", args) {
            Err(reply) => reply,
            Ok(ConfigSubcommand::Get) => self.on_config_get(&args[2..]),
            Ok(ConfigSubcommand::Set) => refused("SET"),
            Ok(ConfigSubcommand::ResetStat) => refused("RESETSTAT"),
            Ok(ConfigSubcommand::Rewrite) => refused("REWRITE"),
            Ok(ConfigSubcommand::Help) => help(&[
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "HELP",
                "    Prints this help.",
            ]),
        }
    }

    /// Redis's rules: a name without `[`, `*` or `?` is looked up (any case)
    /// and echoed as given; a pattern is matched without regard to case.
    /// Each parameter is answered once.
    fn on_config_get(&self, patterns: &[Vec<u8>]) -> Reply {
        let table = self.config_table();
        let mut answered = BTreeSet::new();
        let mut reply = Vec::new();
        for pattern in patterns {
            if !pattern.iter().any(|b| matches!(b, b'[' | b'*' | b'?')) {
                let found = table.iter().position(|(name, _)| pattern.eq_ignore_ascii_case(name.as_bytes()));
                if let Some(k) = found.filter(|k| answered.insert(*k)) {
                    reply.push((Reply::bulk(pattern.clone()), Reply::bulk(table[k].1.clone())));
                }
                continue;
            }
            let pattern = pattern.to_ascii_lowercase();
            for (k, (name, value)) in table.iter().enumerate() {
                if kv::string_match(&pattern, name.as_bytes()) && answered.insert(k) {
                    reply.push((Reply::bulk(name.clone()), Reply::bulk(value.clone())));
                }
            }
        }
        Reply::Map(reply)
    }

    /// The node's answers, then the shell's (replacing a default of the same name).
    fn config_table(&self) -> Vec<(String, String)> {
        let defaults = [
            ("save", String::new()),
            ("appendonly", "yes".into()),
            ("appendfsync", "always".into()),
            ("databases", "1".into()),
            ("maxmemory", "0".into()),
            ("maxmemory-policy", "noeviction".into()),
            ("maxclients", "10000".into()),
            ("latency-tracking", "no".into()),
            ("proto-max-bulk-len", Limits::default().value_bytes_max.to_string()),
            ("timeout", "0".into()),
            ("cluster-enabled", "yes".into()),
        ];
        let mut table: Vec<(String, String)> =
            defaults.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        for (name, value) in &self.shell_stats.config {
            match table.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some(row) => row.1 = value.clone(),
                None => table.push((name.to_ascii_lowercase(), value.clone())),
            }
        }
        table
    }

    fn config_value(&self, name: &str) -> Option<String> {
        self.config_table().into_iter().find(|(n, _)| n == name).map(|(_, value)| value)
    }

    fn on_client(&mut self, conn: ConnId, args: &[Vec<u8>]) -> Reply {
        match subcommand(CLIENT_SUBCOMMANDS, "client", args) {
            Err(reply) => reply,
            Ok(ClientSubcommand::SetName) => match client_name(&args[2]) {
                Ok(name) => {
                    self.clients.connection(conn).name = name;
                    Reply::ok()
                }
                Err(reply) => reply,
            },
            Ok(ClientSubcommand::GetName) => Reply::Bulk(self.clients.connection(conn).name.clone()),
            Ok(ClientSubcommand::Id) => integer(conn.0),
            Ok(ClientSubcommand::Info) => Reply::text(self.client_line(conn, "client|info")),
            Ok(ClientSubcommand::List) => self.on_client_list(conn, &args[2..]),
            Ok(ClientSubcommand::SetInfo) => Reply::ok(),
            Ok(ClientSubcommand::Help) => help(&[
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)]",
                "    Return information about client connections.",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "    Accepted and ignored.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "HELP",
                "    Prints this help.",
            ]),
        }
    }

    /// Every known connection (all are of type normal), one line each.
    fn on_client_list(&self, conn: ConnId, options: &[Vec<u8>]) -> Reply {
        let listed: Vec<ConnId> = match options {
            [] => self.clients.connections.keys().copied().collect(),
            [option, kind] if eq_word(option, "type") => {
                if eq_word(kind, "normal") {
                    self.clients.connections.keys().copied().collect()
                } else if ["master", "replica", "slave", "pubsub"].iter().any(|k| eq_word(kind, k)) {
                    Vec::new()
                } else {
                    return Reply::Error(format!("ERR Unknown client type '{}'", quoted(kind)));
                }
            }
            _ => return Reply::error("ERR syntax error"),
        };
        let mut text = String::new();
        for id in listed {
            let command = if id == conn { "client|list" } else { "NULL" };
            text.push_str(&self.client_line(id, command));
        }
        Reply::text(text)
    }

    /// Redis's CLIENT INFO line, with what the node knows of the connection.
    fn client_line(&self, conn: ConnId, command: &str) -> String {
        let connection = &self.clients.connections[&conn];
        let name = connection.name.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        let age = self.now_ms.saturating_sub(connection.first_command_ms) / 1000;
        let idle = self.now_ms.saturating_sub(connection.last_command_ms) / 1000;
        let session = self.sessions.get(&conn);
        let flags = if session.is_some_and(|s| s.readonly) { "r" } else { "N" };
        let multi = session.and_then(|s| s.multi.as_ref()).map_or(-1, |m| m.commands.len() as i64);
        let resp = session.map_or(Protocol::Resp2, |s| s.protocol).version();
        let user = String::from_utf8_lossy(&connection.user);
        format!(
            "id={} addr=? laddr=? fd=-1 name={name} age={age} idle={idle} flags={flags} db=0 sub=0 psub=0 \
             ssub=0 multi={multi} events=r cmd={command} user={user} redir=-1 resp={resp}\n",
            conn.0
        )
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`, parsed in Redis's
    /// order: the version first, then each option; the protocol and the
    /// name change only if every option is valid. The reply is a map (a flat
    /// array in RESP2), in the protocol the connection now speaks.
    fn on_hello(&mut self, conn: ConnId, args: &[Vec<u8>]) -> Reply {
        let mut protocol = None;
        if let Some(version) = args.get(1) {
            match kv::parse_integer(version) {
                None => return Reply::error("ERR Protocol version is not an integer or out of range"),
                Some(2) => protocol = Some(Protocol::Resp2),
                Some(3) => protocol = Some(Protocol::Resp3),
                Some(_) => return Reply::error("NOPROTO unsupported protocol version"),
            }
        }
        let mut name = None;
        let mut credentials = None;
        let mut k = 2;
        while k < args.len() {
            let more = args.len() - 1 - k;
            if option_is(&args[k], "AUTH") && more >= 2 {
                credentials = Some((&args[k + 1], &args[k + 2]));
                k += 3;
            } else if option_is(&args[k], "SETNAME") && more >= 1 {
                match client_name(&args[k + 1]) {
                    Ok(valid) => name = Some(valid),
                    Err(reply) => return reply,
                }
                k += 2;
            } else {
                return Reply::Error(format!("ERR Syntax error in HELLO option '{}'", c_string(&args[k])));
            }
        }
        if let Some((user, password)) = credentials {
            if let Err(reply) = self.authenticate(conn, user, password) {
                return reply;
            }
        }
        if self.auth_required() && !self.clients.connection(conn).authenticated {
            return Reply::error(HELLO_NOAUTH);
        }
        if let Some(name) = name {
            self.clients.connection(conn).name = name;
        }
        let session = self.sessions.entry(conn).or_default();
        if let Some(protocol) = protocol {
            session.protocol = protocol;
        }
        let proto = session.protocol.version();
        let role = if self.raft.is_leader() { "master" } else { "replica" };
        let field = |name: &str, value: Reply| (Reply::bulk(name), value);
        Reply::Map(vec![
            field("server", Reply::bulk("redis")),
            field("version", Reply::bulk(REDIS_VERSION)),
            field("proto", Reply::Integer(proto)),
            field("id", integer(conn.0)),
            field("mode", Reply::bulk("cluster")),
            field("role", Reply::bulk(role)),
            field("modules", Reply::Array(Some(Vec::new()))),
        ])
    }
}

impl Node {
    /// `AUTH [user] password`; `AUTH password` is the default user's, and
    /// an error when that user takes any password (as in Redis).
    fn on_auth(&mut self, conn: ConnId, args: &[Vec<u8>]) -> Reply {
        match args {
            [_, _] if self.default_user_nopass() => Reply::error(AUTH_WITHOUT_PASSWORD),
            [_, password] => {
                self.authenticate(conn, b"default", password).map_or_else(|e| e, |()| Reply::ok())
            }
            [_, user, password] => {
                self.authenticate(conn, user, password).map_or_else(|e| e, |()| Reply::ok())
            }
            _ => Reply::error("ERR syntax error"),
        }
    }

    /// Checks a user name and password; on success the connection is
    /// authenticated, on failure counted (INFO) and answered WRONGPASS.
    fn authenticate(&mut self, conn: ConnId, user: &[u8], password: &[u8]) -> Result<(), Reply> {
        if !self.password_opens(user, password) {
            self.clients.auth_failures += 1;
            return Err(Reply::error(WRONGPASS));
        }
        let connection = self.clients.connection(conn);
        connection.authenticated = true;
        connection.user = user.to_vec();
        Ok(())
    }

    /// Whether `conn` must authenticate before this command runs: a
    /// password is set, the connection has not given it, and the command
    /// is one Redis would check (it exists, its arity is right, and it is
    /// not AUTH, HELLO or QUIT, Redis's `no_auth` commands). An unknown
    /// command or a wrong arity gets its own error first, as in Redis.
    pub(super) fn needs_auth(&mut self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> bool {
        if !self.auth_required() || self.clients.connection(conn).authenticated {
            return false;
        }
        self.is_checked(name, args)
    }

    /// Whether Redis would check a command's permissions before running
    /// it: it exists, its arity is right, and it is not AUTH, HELLO or
    /// QUIT (Redis's `no_auth` commands).
    pub(super) fn is_checked(&self, name: &[u8], args: &[Vec<u8>]) -> bool {
        match COMMANDS.iter().find(|spec| name.eq_ignore_ascii_case(spec.name.as_bytes())) {
            Some(spec) => !spec.flags.contains(&"no_auth") && arity_allows(spec.arity, args.len()),
            None => {
                let ordered = [&b"MULTI"[..], b"EXEC", b"DISCARD", b"WATCH", b"UNWATCH", b"CLUSTER"];
                ordered.contains(&name) || kv::classify(args).is_ok()
            }
        }
    }
}

pub(super) fn on_ping(args: &[Vec<u8>]) -> Reply {
    match args {
        [_] => Reply::Simple("PONG".into()),
        [_, message] => Reply::bulk(message.clone()),
        _ => wrong_arity("ping"),
    }
}

/// Redis parses the index as a `long long`, then requires an `int`.
fn on_select(index: &[u8]) -> Reply {
    match kv::parse_integer(index) {
        None => Reply::error(NOT_AN_INTEGER),
        Some(index) if i32::try_from(index).is_err() => {
            Reply::error("ERR value is out of range, value must between -2147483648 and 2147483647")
        }
        Some(0) => Reply::ok(),
        Some(_) => Reply::error("ERR DB index is out of range"),
    }
}

fn on_command(args: &[Vec<u8>]) -> Reply {
    if args.len() == 1 {
        return Reply::Array(Some(descriptions().iter().map(Description::to_reply).collect()));
    }
    match subcommand(COMMAND_SUBCOMMANDS, "command", args) {
        Err(reply) => reply,
        Ok(CommandSubcommand::Count) => integer(descriptions().len() as u64),
        Ok(CommandSubcommand::Info) if args.len() == 2 => on_command(&args[..1]),
        Ok(CommandSubcommand::Info) => {
            let all = descriptions();
            let find =
                |name: &Vec<u8>| find_description(&all, name).map_or_else(Reply::nil, Description::to_reply);
            Reply::Array(Some(args[2..].iter().map(find).collect()))
        }
        Ok(CommandSubcommand::Docs) => Reply::Map(Vec::new()),
        Ok(CommandSubcommand::List) if args.len() == 2 => {
            let all = descriptions();
            let names = all.iter().flat_map(|d| std::iter::once(d).chain(&d.subcommands));
            Reply::Array(Some(names.map(|d| Reply::bulk(d.name.clone())).collect()))
        }
        Ok(CommandSubcommand::List) => Reply::error("ERR COMMAND LIST FILTERBY is not supported by cashe"),
        Ok(CommandSubcommand::GetKeys) => on_getkeys(&args[2..]),
        Ok(CommandSubcommand::Help) => help(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands.",
            "LIST",
            "    Return a list of all commands.",
            "INFO [<command-name> ...]",
            "    Return details about the named commands, or all.",
            "DOCS [<command-name> ...]",
            "    Return documentation details (none: an empty array).",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "HELP",
            "    Prints this help.",
        ]),
    }
}

/// `COMMAND GETKEYS command arg…`, with Redis 7.0's errors.
fn on_getkeys(command: &[Vec<u8>]) -> Reply {
    let all = descriptions();
    let Some(found) = find_description(&all, &command[0]) else {
        return Reply::error("ERR Invalid command specified");
    };
    if !arity_allows(found.arity, command.len()) {
        return Reply::error("ERR Invalid number of arguments specified for command");
    }
    let keys = kv::command_keys(command);
    if keys.is_empty() && found.keys.0 == 0 {
        return Reply::error("ERR The command has no key arguments");
    }
    Reply::Array(Some(keys.into_iter().map(Reply::bulk).collect()))
}

/// A command as COMMAND INFO describes it.
struct Description {
    /// Lower case; `container|name` for a subcommand.
    name: String,
    arity: i32,
    flags: Vec<&'static str>,
    /// First key, last key, step.
    keys: (i32, i32, i32),
    categories: Vec<&'static str>,
    subcommands: Vec<Description>,
}

impl Description {
    fn server<T>(spec: &Spec<T>, container: Option<&str>, subcommands: Vec<Description>) -> Description {
        Description {
            name: match container {
                Some(container) => format!("{container}|{}", spec.name),
                None => spec.name.to_string(),
            },
            arity: spec.arity,
            flags: spec.flags.to_vec(),
            keys: (0, 0, 0),
            categories: spec.categories.to_vec(),
            subcommands,
        }
    }

    fn key_space(info: kv::CommandInfo) -> Description {
        let flag = match info.access {
            Access::Read => "readonly",
            Access::Write => "write",
        };
        Description {
            name: info.name.to_string(),
            arity: info.arity,
            flags: vec![flag],
            keys: (info.first_key, info.last_key, info.key_step),
            categories: super::acl::categories_of(info.name),
            subcommands: Vec::new(),
        }
    }

    /// Redis 7.0's ten fields: name, arity, flags, first key, last key,
    /// step, ACL categories, tips, key specifications, subcommands.
    fn to_reply(&self) -> Reply {
        let statuses =
            |words: &[&str]| Reply::Set(words.iter().map(|w| Reply::Simple(w.to_string())).collect());
        let (first, last, step) = self.keys;
        Reply::Array(Some(vec![
            Reply::bulk(self.name.clone()),
            Reply::Integer(i64::from(self.arity)),
            statuses(&self.flags),
            Reply::Integer(i64::from(first)),
            Reply::Integer(i64::from(last)),
            Reply::Integer(i64::from(step)),
            statuses(&self.categories),
            Reply::Array(Some(Vec::new())),
            Reply::Array(Some(Vec::new())),
            Reply::Array(Some(self.subcommands.iter().map(Description::to_reply).collect())),
        ]))
    }
}

/// Every command a client may send: the server commands, then the key
/// space's (CASHE.EXPIRE aside: only the leader proposes it).
fn descriptions() -> Vec<Description> {
    let subcommands = |spec: &Spec<Option<ServerCommand>>| -> Vec<Description> {
        let container = Some(spec.name);
        match spec.which {
            Some(ServerCommand::Client) => {
                CLIENT_SUBCOMMANDS.iter().map(|s| Description::server(s, container, Vec::new())).collect()
            }
            Some(ServerCommand::Config) => {
                CONFIG_SUBCOMMANDS.iter().map(|s| Description::server(s, container, Vec::new())).collect()
            }
            Some(ServerCommand::Command) => {
                COMMAND_SUBCOMMANDS.iter().map(|s| Description::server(s, container, Vec::new())).collect()
            }
            Some(ServerCommand::Acl) => {
                ACL_SUBCOMMANDS.iter().map(|s| Description::server(s, container, Vec::new())).collect()
            }
            _ => Vec::new(),
        }
    };
    let server = COMMANDS.iter().map(|spec| Description::server(spec, None, subcommands(spec)));
    let key_space = kv::commands()
        .filter(|info| !info.name.eq_ignore_ascii_case(kv::CASHE_EXPIRE))
        .map(Description::key_space);
    server.chain(key_space).collect()
}

/// By name, any case; `container|subcommand` finds a subcommand.
fn find_description<'a>(all: &'a [Description], name: &[u8]) -> Option<&'a Description> {
    let (container, sub) = match name.iter().position(|b| *b == b'|') {
        Some(bar) => (&name[..bar], Some(name)),
        None => (name, None),
    };
    let found = all.iter().find(|d| container.eq_ignore_ascii_case(d.name.as_bytes()))?;
    match sub {
        None => Some(found),
        Some(full) => found.subcommands.iter().find(|d| full.eq_ignore_ascii_case(d.name.as_bytes())),
    }
}

/// Finds `args[1]` in a container's table and checks its arity, with
/// Redis's texts for an unknown subcommand and a wrong argument count.
fn subcommand<T: Copy>(table: &[Spec<T>], container: &str, args: &[Vec<u8>]) -> Result<T, Reply> {
    let Some(spec) = table.iter().find(|spec| args[1].eq_ignore_ascii_case(spec.name.as_bytes())) else {
        return Err(Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            quoted(&args[1]),
            container.to_ascii_uppercase()
        )));
    };
    if !arity_allows(spec.arity, args.len()) {
        return Err(wrong_arity(&format!("{container}|{}", spec.name)));
    }
    Ok(spec.which)
}

/// Checks the arity of a server command named `name` (upper case, as
/// Redis's `processCommand` does before running it): `None` when `name` is
/// not a server command.
pub(super) fn arity_check(name: &[u8], count: usize) -> Option<Result<(), Reply>> {
    let spec = COMMANDS.iter().find(|spec| name.eq_ignore_ascii_case(spec.name.as_bytes()))?;
    Some(if arity_allows(spec.arity, count) { Ok(()) } else { Err(wrong_arity(spec.name)) })
}

/// Redis's `processCommand` rule.
fn arity_allows(arity: i32, count: usize) -> bool {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    if arity > 0 {
        count == arity
    } else {
        count >= -arity
    }
}

fn wrong_arity(name: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{name}' command"))
}

/// Redis accepts names of printable ASCII without spaces; an empty name
/// clears the connection's name.
fn client_name(name: &[u8]) -> Result<Option<Vec<u8>>, Reply> {
    if !name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        return Err(Reply::error(BAD_CLIENT_NAME));
    }
    Ok(Some(name.to_vec()).filter(|name| !name.is_empty()))
}

fn help(lines: &[&str]) -> Reply {
    Reply::Array(Some(lines.iter().map(|line| Reply::Simple(line.to_string())).collect()))
}

fn integer(n: u64) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn eq_word(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The argument as C's `%s` prints it: up to the first NUL. Not UTF-8
/// shows as U+FFFD (replies hold errors as `String`).
fn c_string(arg: &[u8]) -> String {
    let end = arg.iter().position(|b| *b == 0).unwrap_or(arg.len());
    String::from_utf8_lossy(&arg[..end]).into_owned()
}

/// `%.128s`: at most 128 bytes of the C string.
fn quoted(arg: &[u8]) -> String {
    let end = arg.iter().position(|b| *b == 0).unwrap_or(arg.len()).min(QUOTED_BYTES_MAX);
    String::from_utf8_lossy(&arg[..end]).into_owned()
}

/// `!strcasecmp(arg, name)`.
fn option_is(arg: &[u8], name: &str) -> bool {
    c_string(arg).eq_ignore_ascii_case(name)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
    }
}

/// INFO's sections, in Redis 7.0's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Server,
    Clients,
    Memory,
    Persistence,
    Stats,
    Replication,
    Cpu,
    Modules,
    Commandstats,
    Errorstats,
    Latencystats,
    Cluster,
    Keyspace,
}

impl Section {
    const ALL: [Section; 13] = [
        Section::Server,
        Section::Clients,
        Section::Memory,
        Section::Persistence,
        Section::Stats,
        Section::Replication,
        Section::Cpu,
        Section::Modules,
        Section::Commandstats,
        Section::Errorstats,
        Section::Latencystats,
        Section::Cluster,
        Section::Keyspace,
    ];

    /// Redis 7.0's `genInfoSectionDict`: no argument is `default` (every
    /// section but commandstats and latencystats); `all` is every section,
    /// and `everything` also the modules' own (cashe has none); any other
    /// word names a section, in any case (`module_list` is modules), and
    /// an unknown one adds nothing. The words add up (`INFO default
    /// commandstats`); each section is given once, in Redis's order.
    fn chosen(names: &[Vec<u8>]) -> Vec<Section> {
        let default = |section: &Section| !matches!(section, Section::Commandstats | Section::Latencystats);
        let mut chosen = [false; Section::ALL.len()];
        let mut choose = |pick: &dyn Fn(&Section) -> bool| {
            for (k, section) in Section::ALL.iter().enumerate() {
                chosen[k] |= pick(section);
            }
        };
        if names.is_empty() {
            choose(&default);
        }
        for name in names {
            if eq_word(name, "default") {
                choose(&default);
            } else if eq_word(name, "all") || eq_word(name, "everything") {
                choose(&|_| true);
            } else if eq_word(name, "module_list") {
                choose(&|section| *section == Section::Modules);
            } else {
                choose(&|section| eq_word(name, section.name()));
            }
        }
        Section::ALL.iter().zip(chosen).filter(|(_, chosen)| *chosen).map(|(section, _)| *section).collect()
    }

    fn name(self) -> &'static str {
        match self {
            Section::Server => "server",
            Section::Clients => "clients",
            Section::Memory => "memory",
            Section::Persistence => "persistence",
            Section::Stats => "stats",
            Section::Replication => "replication",
            Section::Cpu => "cpu",
            Section::Modules => "modules",
            Section::Commandstats => "commandstats",
            Section::Errorstats => "errorstats",
            Section::Latencystats => "latencystats",
            Section::Cluster => "cluster",
            Section::Keyspace => "keyspace",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Section::Server => "Server",
            Section::Clients => "Clients",
            Section::Memory => "Memory",
            Section::Persistence => "Persistence",
            Section::Stats => "Stats",
            Section::Replication => "Replication",
            Section::Cpu => "CPU",
            Section::Modules => "Modules",
            Section::Commandstats => "Commandstats",
            Section::Errorstats => "Errorstats",
            Section::Latencystats => "Latencystats",
            Section::Cluster => "Cluster",
            Section::Keyspace => "Keyspace",
        }
    }
}

/// Redis's `bytesToHuman`: `512B`, `1.50K`, `2.00M`, ... (binary units).
fn bytes_to_human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    for unit in UNITS {
        if value < 1024.0 || unit == "P" {
            return format!("{value:.2}{unit}");
        }
        value /= 1024.0;
    }
    unreachable!("the last unit returns")
}

/// The commands INFO commandstats counts, by upper-case name: the server
/// commands (with their subcommands), the transaction commands, and the
/// key space's (CASHE.EXPIRE aside).
pub(super) fn command_name(name: &[u8], args: &[Vec<u8>]) -> Option<CommandName> {
    static NAMES: OnceLock<BTreeMap<Vec<u8>, &'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let server = COMMANDS.iter().map(|spec| spec.name);
        let transaction = ["multi", "exec", "discard", "watch", "unwatch"];
        let key_space =
            kv::commands().map(|info| info.name).filter(|n| !n.eq_ignore_ascii_case(kv::CASHE_EXPIRE));
        server.chain(transaction).chain(key_space).map(|n| (n.to_ascii_uppercase().into_bytes(), n)).collect()
    });
    let found = *names.get(name)?;
    let subcommand = match found {
        "client" => sub_name(CLIENT_SUBCOMMANDS, args),
        "config" => sub_name(CONFIG_SUBCOMMANDS, args),
        "command" => sub_name(COMMAND_SUBCOMMANDS, args),
        "acl" => sub_name(ACL_SUBCOMMANDS, args),
        _ => None,
    };
    Some((found, subcommand))
}

fn sub_name<T>(table: &[Spec<T>], args: &[Vec<u8>]) -> Option<&'static str> {
    let arg = args.get(1)?;
    table.iter().map(|spec| spec.name).find(|n| arg.eq_ignore_ascii_case(n.as_bytes()))
}

/// Errors Redis gives before it runs a command (its `rejectCommand`), as
/// cashe's texts say them: wrong arity, a command over the size limit, no
/// leader, a forward the leader refused, not authenticated, not permitted
/// (an EXEC refused so answers EXECABORT because of it).
fn rejected(error: &str) -> bool {
    [
        "ERR wrong number of arguments",
        "ERR command of ",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "MOVED",
        "CROSSSLOT",
        NOAUTH,
        "NOPERM",
        "EXECABORT Transaction discarded because of:",
    ]
    .iter()
    .any(|prefix| error.starts_with(prefix))
}

/// An error's code, as errorstats groups it: its first word, if a space
/// ends it within 32 bytes; otherwise `ERR` (Redis's `afterErrorReply`).
fn error_code(error: &str) -> &str {
    let head = &error.as_bytes()[..error.len().min(32)];
    match head.iter().position(|b| *b == b' ') {
        Some(space) => &error[..space],
        None => "ERR",
    }
}

/// The `field:value` lines of one INFO section, in order.
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn add(&mut self, name: &str, value: impl Display) {
        self.0.push((name.to_string(), value.to_string()));
    }

    /// The shell's pairs; one named like a node field replaces its value
    /// (the shell counts accepted connections, the node only those that
    /// sent a command).
    fn extend(&mut self, pairs: &[(String, String)]) {
        for (name, value) in pairs {
            match self.0.iter_mut().find(|(field, _)| field == name) {
                Some(field) => field.1 = value.clone(),
                None => self.0.push((name.clone(), value.clone())),
            }
        }
    }

    fn render(&self, out: &mut String) {
        for (name, value) in &self.0 {
            write!(out, "{name}:{value}\r\n").expect("writing to a String cannot fail");
        }
    }
}
