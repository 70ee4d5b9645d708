//! ACL users: who a connection is, and what it may run and touch, with
//! Redis 7.0's rules, file syntax, replies and error texts.
//!
//! Users come from `--aclfile`, read by the shell at start-up and parsed
//! here ([`Acl::parse`]) into the node's config: **every node loads its own
//! copy; users are not replicated**, so each member of a cluster must be
//! given the same file. `ACL SETUSER`, `DELUSER`, `LOAD` and `SAVE` answer
//! an error saying so. Without a file there is one user, `default`
//! (`on nopass ~* &* +@all`, or with `--requirepass`'s password).
//!
//! The subset of Redis's rules understood: `on`/`off`, `>password`,
//! `<password`, `#<sha256 hex>`, `!<sha256 hex>`, `nopass`, `resetpass`,
//! `+@all`/`allcommands`, `-@all`/`nocommands`, `+@category`/`-@category`,
//! `+command`/`-command` (and `+container|subcommand`), `~pattern`,
//! `allkeys`, `resetkeys`, `&pattern`/`allchannels`/`resetchannels` (kept
//! for ACL LIST only: cashe has no pub/sub) and `reset`. Selectors,
//! `%R~`/`%W~` patterns and payload sanitizing are refused as Redis refuses
//! an unknown rule. A file line is split at spaces, with no quoting, as
//! Redis 7.0 splits it (a password with a space is given as its `#sha256`).
//!
//! Passwords are kept only as SHA-256 digests (as Redis keeps them) and
//! compared in constant time; `User`'s `Debug` shows neither.
//!
//! Checks ([`Node::acl_check`]), as Redis 7.0's `ACLCheckAllPerm`: after
//! the command is known and its arity right, and before it runs or is
//! queued in MULTI: the command (a subcommand by its `container|name`)
//! must be allowed, then every key argument must match one of the user's
//! `~patterns` (Redis's `stringmatch`), else `-NOPERM`. Commands Redis
//! flags `no_auth` (AUTH, HELLO, QUIT) are always allowed. A follower
//! checks before it forwards; the leader trusts its peers.
//!
//! Categories are Redis's, from the generated table in `acl_categories`.
//! Pure: the file's text comes from the shell, nothing here reads a file.

use super::acl_categories::{CATEGORIES, COMMANDS};
use super::server::AclSubcommand;
use super::{ConnId, Node};
use crate::kv;
use crate::protocol::Reply;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Bits of a command set: one per row of the generated table.
const COMMAND_WORDS: usize = COMMANDS.len().div_ceil(64);
/// Bytes of a SHA-256 digest.
const DIGEST_BYTES: usize = 32;

/// Redis's `ACLSetUserStringError` texts.
const UNKNOWN_NAME: &str = "Unknown command or category name in ACL";
const SYNTAX_ERROR: &str = "Syntax error";
const KEYS_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and \
                              does not have any effect. Try 'resetkeys' to start with an empty list of patterns";
const CHANNELS_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid \
                                  and does not have any effect. Try 'resetchannels' to start with an empty list \
                                  of channels";
const NO_SUCH_PASSWORD: &str = "The password you are trying to remove from the user does not exist";
const BAD_HASH: &str =
    "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";

/// Redis 7.0's `getAclErrorMessage` for a key.
const NOPERM_KEY: &str = "NOPERM this user has no permissions to access one of the keys used as arguments";

/// Why a rule could not be applied (Redis's errno values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RuleError {
    /// ENOENT: an unknown command or category; Redis reports every one
    /// and names the rule.
    UnknownName,
    /// Any other: Redis reports only the first of a line, without the
    /// rule (it may be a password).
    Other(&'static str),
}

/// One user: flags, password digests, key patterns and allowed commands.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct User {
    name: String,
    enabled: bool,
    nopass: bool,
    passwords: Vec<[u8; DIGEST_BYTES]>,
    all_keys: bool,
    key_patterns: Vec<Vec<u8>>,
    /// Shown by ACL LIST only: cashe has no pub/sub.
    all_channels: bool,
    channel_patterns: Vec<Vec<u8>>,
    /// `+@all` was the last reset: the user may run every command,
    /// future ones too (Redis's reserved command bit).
    all_commands: bool,
    /// Row `k` of the generated table is allowed when bit `k` is set.
    allowed: [u64; COMMAND_WORDS],
    /// The command rules since the last `+@all`/`-@all`, in order, each
    /// once (Redis's `command_rules`), for ACL LIST.
    rules: Vec<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("nopass", &self.nopass)
            .field("passwords", &format_args!("<{} redacted>", self.passwords.len()))
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Redis's `ACLCreateUser`: off, no password, no keys, no commands.
    fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            all_keys: false,
            key_patterns: Vec::new(),
            all_channels: false,
            channel_patterns: Vec::new(),
            all_commands: false,
            allowed: [0; COMMAND_WORDS],
            rules: Vec::new(),
        }
    }

    /// Redis's default user: `on nopass ~* &* +@all`.
    fn default_user() -> User {
        let mut user = User::new("default");
        for rule in ["on", "nopass", "~*", "&*", "+@all"] {
            user.apply(rule.as_bytes()).expect("the default user's rules are valid");
        }
        user
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `nopass`: any password logs in (protected mode looks at this for
    /// the default user, as Redis's does).
    pub fn is_nopass(&self) -> bool {
        self.nopass
    }

    /// `on`: the user may log in at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Redis's `ACLSetUser` for one rule.
    fn apply(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_slice() {
            b"" => {}
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"allkeys" | b"~*" => {
                self.all_keys = true;
                self.key_patterns.clear();
            }
            b"resetkeys" => {
                self.all_keys = false;
                self.key_patterns.clear();
            }
            b"allchannels" | b"&*" => {
                self.all_channels = true;
                self.channel_patterns.clear();
            }
            b"resetchannels" => {
                self.all_channels = false;
                self.channel_patterns.clear();
            }
            b"allcommands" | b"+@all" => self.set_all_commands(true),
            b"nocommands" | b"-@all" => self.set_all_commands(false),
            b"reset" => {
                for rule in ["resetpass", "resetkeys", "resetchannels", "off", "-@all"] {
                    self.apply(rule.as_bytes())?;
                }
            }
            _ => self.apply_with_argument(rule)?,
        }
        Ok(())
    }

    /// The rules that carry an argument after their first byte.
    fn apply_with_argument(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        let argument = &rule[1..];
        match rule[0] {
            b'>' => self.add_password(digest(argument)),
            b'#' => self.add_password(parse_hash(argument)?),
            b'<' => self.remove_password(&digest(argument))?,
            b'!' => self.remove_password(&parse_hash(argument)?)?,
            b'~' => {
                if self.all_keys {
                    return Err(RuleError::Other(KEYS_AFTER_ALL));
                }
                if !self.key_patterns.iter().any(|p| p == argument) {
                    self.key_patterns.push(argument.to_vec());
                }
            }
            b'&' => {
                if self.all_channels {
                    return Err(RuleError::Other(CHANNELS_AFTER_ALL));
                }
                if !self.channel_patterns.iter().any(|p| p == argument) {
                    self.channel_patterns.push(argument.to_vec());
                }
            }
            b'+' | b'-' => self.apply_command_rule(rule[0] == b'+', argument)?,
            _ => return Err(RuleError::Other(SYNTAX_ERROR)),
        }
        Ok(())
    }

    fn add_password(&mut self, hash: [u8; DIGEST_BYTES]) {
        self.nopass = false;
        if !self.passwords.contains(&hash) {
            self.passwords.push(hash);
        }
    }

    fn remove_password(&mut self, hash: &[u8; DIGEST_BYTES]) -> Result<(), RuleError> {
        let before = self.passwords.len();
        self.passwords.retain(|p| p != hash);
        if self.passwords.len() == before {
            return Err(RuleError::Other(NO_SUCH_PASSWORD));
        }
        Ok(())
    }

    fn set_all_commands(&mut self, allow: bool) {
        self.all_commands = allow;
        self.allowed = if allow { [u64::MAX; COMMAND_WORDS] } else { [0; COMMAND_WORDS] };
        self.rules.clear();
    }

    /// `+name`/`-name` (a command, `container|subcommand`, or `@category`).
    fn apply_command_rule(&mut self, allow: bool, name: &[u8]) -> Result<(), RuleError> {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let rows: Vec<usize> = match name.strip_prefix('@') {
            Some(category) => {
                if !CATEGORIES.contains(&category) {
                    return Err(RuleError::UnknownName);
                }
                (0..COMMANDS.len()).filter(|k| in_category(COMMANDS[*k].1, category)).collect()
            }
            None => {
                // A container stands for its subcommands too.
                let prefix = format!("{name}|");
                let rows: Vec<usize> = (0..COMMANDS.len())
                    .filter(|k| COMMANDS[*k].0 == name || COMMANDS[*k].0.starts_with(&prefix))
                    .collect();
                if rows.is_empty() {
                    return Err(RuleError::UnknownName);
                }
                rows
            }
        };
        for k in rows {
            self.set_allowed(k, allow);
        }
        // Redis's ACLUpdateCommandRules: the rule moves to the end, once.
        self.rules.retain(|r| r[1..] != name);
        self.rules.push(format!("{}{name}", if allow { '+' } else { '-' }));
        Ok(())
    }

    fn set_allowed(&mut self, row: usize, allow: bool) {
        let (word, bit) = (row / 64, 1u64 << (row % 64));
        if allow {
            self.allowed[word] |= bit;
        } else {
            self.allowed[word] &= !bit;
        }
    }

    fn is_allowed(&self, row: usize) -> bool {
        self.allowed[row / 64] & (1u64 << (row % 64)) != 0
    }

    /// Every command and every key: nothing to check.
    fn is_unrestricted(&self) -> bool {
        self.all_commands && self.rules.is_empty() && self.all_keys
    }

    fn may_access(&self, key: &[u8]) -> bool {
        self.all_keys || self.key_patterns.iter().any(|pattern| kv::string_match(pattern, key))
    }

    /// Whether `password` opens this user: a `nopass` user takes any.
    fn password_matches(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let attempt = digest(password);
        // Every digest is compared whole, whichever matches.
        self.passwords.iter().fold(false, |found, hash| found | constant_time_eq(hash, &attempt))
    }

    /// Redis 7.0's `ACLDescribeUser`: `user NAME` then the flags, the
    /// password digests, the keys, the channels and the command rules.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("user {}", self.name)];
        parts.push(if self.enabled { "on" } else { "off" }.to_string());
        if self.nopass {
            parts.push("nopass".into());
        }
        parts.extend(self.passwords.iter().map(|hash| format!("#{}", hex(hash))));
        if self.all_keys {
            parts.push("~*".into());
        } else {
            parts.extend(self.key_patterns.iter().map(|p| format!("~{}", String::from_utf8_lossy(p))));
        }
        if self.all_channels {
            parts.push("&*".into());
        } else {
            parts.push("resetchannels".into());
            parts.extend(self.channel_patterns.iter().map(|p| format!("&{}", String::from_utf8_lossy(p))));
        }
        parts.push(if self.all_commands { "+@all" } else { "-@all" }.to_string());
        parts.extend(self.rules.iter().cloned());
        parts.join(" ")
    }
}

/// The users a node knows, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Acl {
    users: BTreeMap<String, User>,
}

impl Default for Acl {
    /// Only the default user, `on nopass ~* &* +@all`.
    fn default() -> Acl {
        let user = User::default_user();
        Acl { users: BTreeMap::from([(user.name.clone(), user)]) }
    }
}

impl Acl {
    /// The default user with `--requirepass`'s password.
    pub fn with_default_password(password: &super::Password) -> Acl {
        let mut acl = Acl::default();
        let user = acl.users.get_mut("default").expect("the default user");
        user.add_password(digest(password.expose()));
        acl
    }

    /// Parses an ACL file's text as Redis's `ACLLoadFromFile` does: every
    /// line `user NAME rule...` (blank lines skipped); a default user not
    /// in the file is `on nopass ~* &* +@all`. On errors, all of them in
    /// Redis's words, each naming `file_name` and the line, joined as Redis
    /// joins them.
    pub fn parse(text: &str, file_name: &str) -> Result<Acl, String> {
        let mut users = BTreeMap::new();
        let mut errors = String::new();
        for (k, line) in text.split('\n').enumerate() {
            let line_number = k + 1;
            let line = line.trim_matches([' ', '\t', '\r', '\n']);
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split(' ').collect();
            if words[0] != "user" || words.len() < 2 {
                errors += &format!(
                    "{file_name}:{line_number} should start with user keyword followed by the username. "
                );
                continue;
            }
            let name = words[1];
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b == 0) {
                errors +=
                    &format!("'{file_name}:{line_number}: username '{name}' contains invalid characters. ");
                continue;
            }
            if users.contains_key(name) {
                errors += &format!("WARNING: Duplicate user '{name}' found on line {line_number}. ");
                continue;
            }
            let mut user = User::new(name);
            // Redis names every unknown command or category, but only the
            // first other error of a line, without the rule (it may be a
            // password).
            let mut other_reported = false;
            for rule in &words[2..] {
                let rule = rule.trim_matches(['\t', '\r', '\n']);
                match user.apply(rule.as_bytes()) {
                    Ok(()) => {}
                    Err(RuleError::UnknownName) => {
                        errors += &format!(
                            "{file_name}:{line_number}: Error in applying operation '{rule}': {UNKNOWN_NAME}. "
                        );
                    }
                    Err(RuleError::Other(message)) if !other_reported => {
                        errors += &format!("{file_name}:{line_number}: {message}. ");
                        other_reported = true;
                    }
                    Err(RuleError::Other(_)) => {}
                }
            }
            users.insert(name.to_string(), user);
        }
        if !errors.is_empty() {
            return Err(errors.trim_end().to_string());
        }
        users.entry("default".to_string()).or_insert_with(User::default_user);
        Ok(Acl { users })
    }

    pub fn user(&self, name: &[u8]) -> Option<&User> {
        std::str::from_utf8(name).ok().and_then(|name| self.users.get(name))
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Whether `password` opens the enabled user `name`.
    fn authenticate(&self, name: &[u8], password: &[u8]) -> bool {
        self.user(name).is_some_and(|user| user.enabled && user.password_matches(password))
    }
}

fn digest(bytes: &[u8]) -> [u8; DIGEST_BYTES] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Redis's `#` rule: exactly 64 lower-case hexadecimal digits.
fn parse_hash(text: &[u8]) -> Result<[u8; DIGEST_BYTES], RuleError> {
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if text.len() != DIGEST_BYTES * 2 {
        return Err(RuleError::Other(BAD_HASH));
    }
    let mut hash = [0u8; DIGEST_BYTES];
    for (k, pair) in text.chunks(2).enumerate() {
        let (Some(high), Some(low)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(RuleError::Other(BAD_HASH));
        };
        hash[k] = high << 4 | low;
    }
    Ok(hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8; DIGEST_BYTES], b: &[u8; DIGEST_BYTES]) -> bool {
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Row numbers of the generated table by name (`container|sub` for a
/// subcommand).
fn rows() -> &'static BTreeMap<&'static str, usize> {
    static ROWS: OnceLock<BTreeMap<&'static str, usize>> = OnceLock::new();
    ROWS.get_or_init(|| COMMANDS.iter().enumerate().map(|(k, (name, _))| (*name, k)).collect())
}

/// The row a command is checked against: a container's subcommand by
/// `container|sub`, else the command. `None`: not in the table, or an
/// unknown subcommand (its handler answers the error, as Redis answers it
/// before any ACL check).
fn command_row(args: &[Vec<u8>]) -> Option<usize> {
    let name = String::from_utf8_lossy(args.first()?).to_ascii_lowercase();
    let rows = rows();
    let row = *rows.get(name.as_str())?;
    let prefix = format!("{name}|");
    let is_container = rows.range(prefix.as_str()..).next().is_some_and(|(n, _)| n.starts_with(&prefix));
    if !is_container || args.len() < 2 {
        return Some(row);
    }
    let full = format!("{prefix}{}", String::from_utf8_lossy(&args[1]).to_ascii_lowercase());
    rows.get(full.as_str()).copied()
}

impl Node {
    /// The users in force: `--aclfile`'s, else the default user (with
    /// `--requirepass`'s password, if any).
    fn effective_acl(&self) -> std::borrow::Cow<'_, Acl> {
        match (&self.config.acl, &self.config.requirepass) {
            (Some(acl), _) => std::borrow::Cow::Borrowed(acl),
            (None, Some(password)) => std::borrow::Cow::Owned(Acl::with_default_password(password)),
            (None, None) => std::borrow::Cow::Owned(Acl::default()),
        }
    }

    /// Whether a new connection must authenticate: the default user has a
    /// password or is off (Redis's `authRequired`).
    pub(super) fn auth_required(&self) -> bool {
        match &self.config.acl {
            Some(acl) => acl.user(b"default").is_none_or(|user| !(user.enabled && user.nopass)),
            None => self.config.requirepass.is_some(),
        }
    }

    /// Whether the default user takes any password (AUTH with one argument
    /// is then an error, as in Redis).
    pub(super) fn default_user_nopass(&self) -> bool {
        match &self.config.acl {
            Some(acl) => acl.user(b"default").is_some_and(|user| user.nopass),
            None => self.config.requirepass.is_none(),
        }
    }

    /// Whether `password` opens the enabled user `name`.
    pub(super) fn password_opens(&self, name: &[u8], password: &[u8]) -> bool {
        match (&self.config.acl, &self.config.requirepass) {
            (Some(acl), _) => acl.authenticate(name, password),
            (None, requirepass) => {
                name == b"default" && requirepass.as_ref().is_none_or(|p| p.matches(password))
            }
        }
    }

    /// The reply to a command the connection's user may not run (see
    /// [`Node::acl_check`]), refused as [`Node::reject`] says.
    pub(super) fn acl_refusal(&mut self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> Option<Reply> {
        let Err(Reply::Error(text)) = self.acl_check(conn, name, args) else { return None };
        Some(self.reject(conn, name, text))
    }

    /// Redis's `rejectCommand` of an error `text` (NOAUTH, NOPERM) before
    /// a command runs: inside MULTI it dooms EXEC; a refused EXEC answers
    /// `-EXECABORT Transaction discarded because of: <text>` and ends the
    /// transaction and its watches.
    pub(super) fn reject(&mut self, conn: ConnId, name: &[u8], text: String) -> Reply {
        let session = self.sessions.entry(conn).or_default();
        if name == b"EXEC" {
            session.multi = None;
            // A WATCH still in flight adds its keys after this, as if sent
            // after the EXEC: at worst a later EXEC answers null.
            session.watches.clear();
            return Reply::Error(format!("EXECABORT Transaction discarded because of: {text}"));
        }
        if let Some(multi) = session.multi.as_mut() {
            multi.failed = true;
        }
        Reply::Error(text)
    }

    /// Redis's `ACLCheckAllPerm`: `-NOPERM` (counted in INFO) if the
    /// connection's user may not run the command or touch one of its keys.
    /// Commands Redis would not check (unknown, wrong arity, `no_auth`)
    /// pass, to get their own answer.
    fn acl_check(&mut self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> Result<(), Reply> {
        let denial = self.acl_verdict(conn, name, args);
        match &denial {
            Err((Denied::Keys, _)) => self.clients.denied_keys += 1,
            Err((Denied::Command, _)) => self.clients.denied_commands += 1,
            Ok(()) => {}
        }
        denial.map_err(|(_, reply)| reply)
    }

    /// Whether the ACL refuses the command (`acl_check`, nothing counted):
    /// the router asks before it refuses or splits a command itself, as
    /// Redis checks permissions before slots.
    pub(super) fn acl_denies(&self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> bool {
        self.acl_verdict(conn, name, args).is_err()
    }

    fn acl_verdict(&self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> Result<(), (Denied, Reply)> {
        let Some(acl) = &self.config.acl else { return Ok(()) };
        // A user is never deleted, so a connection's user always exists;
        // refuse everything if not.
        let Some(user) = acl.user(self.clients.user_of(conn)) else {
            return Err((
                Denied::Command,
                Reply::error("NOPERM this user has no permissions to run this command"),
            ));
        };
        if user.is_unrestricted() || !self.is_checked(name, args) {
            return Ok(());
        }
        let Some(row) = command_row(args) else { return Ok(()) };
        if !user.is_allowed(row) {
            let text =
                format!("NOPERM this user has no permissions to run the '{}' command", COMMANDS[row].0);
            return Err((Denied::Command, Reply::Error(text)));
        }
        if !user.all_keys && !kv::command_keys(args).into_iter().all(|key| user.may_access(key)) {
            return Err((Denied::Keys, Reply::error(NOPERM_KEY)));
        }
        Ok(())
    }

    /// `ACL <subcommand>`, its arity checked.
    pub(super) fn on_acl(&self, conn: ConnId, which: AclSubcommand, args: &[Vec<u8>]) -> Reply {
        let bulk_list = |items: Vec<String>| Reply::Array(Some(items.into_iter().map(Reply::bulk).collect()));
        let refused = |what: &str| {
            Reply::Error(format!(
                "ERR ACL {what} is not supported by cashe: users come from the --aclfile given to every node at start"
            ))
        };
        match which {
            AclSubcommand::WhoAmI => Reply::bulk(self.clients.user_of(conn).to_vec()),
            AclSubcommand::Users => bulk_list(self.effective_acl().users().map(|u| u.name.clone()).collect()),
            AclSubcommand::List => bulk_list(self.effective_acl().users().map(User::describe).collect()),
            AclSubcommand::Cat if args.len() > 3 => Reply::Error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
                String::from_utf8_lossy(&args[1])
            )),
            AclSubcommand::Cat => on_acl_cat(args.get(2)),
            AclSubcommand::Help => help(),
            AclSubcommand::SetUser => refused("SETUSER"),
            AclSubcommand::DelUser => refused("DELUSER"),
            AclSubcommand::Load => refused("LOAD"),
            AclSubcommand::Save => refused("SAVE"),
        }
    }
}

/// `ACL CAT`: every category; `ACL CAT category`: its commands, in table
/// order (Redis answers in its hash table's order).
fn on_acl_cat(category: Option<&Vec<u8>>) -> Reply {
    let bulks = |names: Vec<&str>| Reply::Array(Some(names.into_iter().map(Reply::bulk).collect()));
    let Some(category) = category else { return bulks(CATEGORIES.to_vec()) };
    let wanted = String::from_utf8_lossy(category).to_ascii_lowercase();
    let Some(category) = CATEGORIES.iter().find(|c| **c == wanted) else {
        let shown = String::from_utf8_lossy(&category[..category.len().min(128)]).into_owned();
        return Reply::Error(format!("ERR Unknown category '{shown}'"));
    };
    bulks(COMMANDS.iter().filter(|(_, cats)| in_category(cats, category)).map(|(name, _)| *name).collect())
}

fn help() -> Reply {
    let lines = [
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "LIST",
        "    Show users details in config file format.",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "SETUSER, DELUSER, LOAD, SAVE",
        "    Not supported: users come from the --aclfile given to every node at start.",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(Some(lines.iter().map(|line| Reply::Simple(line.to_string())).collect()))
}

/// Categories of a command for COMMAND INFO (`@read`, ...), by its
/// lower-case name (`container|sub` for a subcommand).
pub(super) fn categories_of(name: &str) -> Vec<&'static str> {
    rows().get(name).map(|row| COMMANDS[*row].1.to_vec()).unwrap_or_default()
}

/// Whether a table row's categories (`@read`, ...) include `category` (`read`).
fn in_category(categories: &[&str], category: &str) -> bool {
    categories.iter().any(|c| c.strip_prefix('@') == Some(category))
}

/// What an ACL refusal is counted as in INFO.
enum Denied {
    Command,
    Keys,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Acl, String> {
        Acl::parse(text, "users.acl")
    }

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_file_without_a_default_user_gets_redis_default_one() {
        let acl = parse("user alice on >pw +@read ~public:*\n\n").unwrap();
        let listed: Vec<String> = acl.users().map(User::describe).collect();
        assert_eq!(
            listed,
            [
                "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~public:* \
                 resetchannels -@all +@read",
                "user default on nopass ~* &* +@all",
            ]
        );
    }

    #[test]
    fn rules_are_described_in_redis_canonical_form() {
        let acl = parse("user u on nopass allkeys +@all -@dangerous +get -get +set resetchannels").unwrap();
        assert_eq!(
            acl.user(b"u").unwrap().describe(),
            "user u on nopass ~* resetchannels +@all -@dangerous -get +set"
        );
        let acl = parse(&format!("user u >a >a #{}", "ab".repeat(32))).unwrap();
        let u = acl.user(b"u").unwrap();
        assert_eq!(u.passwords.len(), 2);
        assert!(u.describe().starts_with("user u off #ca978112"));
        let acl = parse("user u on >a ~x +@all reset").unwrap();
        assert_eq!(acl.user(b"u").unwrap().describe(), "user u off resetchannels -@all");
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers_in_redis_words() {
        let text = "user alice on >a +@read ~public:*\nuser bob on +@nosuch -nosuchcommand\nfoo bar\n\
                    user carol #abc\nuser alice on\nuser dave allkeys ~x\nuser erin <nothere\nuser\n";
        let error = parse(text).unwrap_err();
        assert_eq!(
            error,
            "users.acl:2: Error in applying operation '+@nosuch': Unknown command or category name in ACL. \
             users.acl:2: Error in applying operation '-nosuchcommand': Unknown command or category name in ACL. \
             users.acl:3 should start with user keyword followed by the username. \
             users.acl:4: The password hash must be exactly 64 characters and contain only lowercase \
             hexadecimal characters. \
             WARNING: Duplicate user 'alice' found on line 5. \
             users.acl:6: Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does \
             not have any effect. Try 'resetkeys' to start with an empty list of patterns. \
             users.acl:7: The password you are trying to remove from the user does not exist. \
             users.acl:8 should start with user keyword followed by the username."
        );
        assert_eq!(parse("user u on >secret bogus").unwrap_err(), "users.acl:1: Syntax error.");
    }

    #[test]
    fn no_input_makes_the_parser_panic() {
        let pieces =
            ["user", "u", "on", "off", ">", "#", "~", "&", "+", "-", "@", "|", "\r", "\t", "é", "\0", "\n"];
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..12 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
                if seed & 1 == 0 {
                    text.push(' ');
                }
            }
            let _ = parse(&text);
        }
    }

    #[test]
    fn commands_and_subcommands_are_checked_by_their_rows() {
        let acl = parse("user u on nopass -@all +@read +client|id ~public:*").unwrap();
        let u = acl.user(b"u").unwrap();
        let allowed = |words: &[&str]| command_row(&args(words)).is_some_and(|row| u.is_allowed(row));
        assert!(allowed(&["GET", "k"]));
        assert!(!allowed(&["SET", "k", "v"]));
        assert!(allowed(&["CLIENT", "ID"]));
        assert!(!allowed(&["client", "list"]));
        assert_eq!(command_row(&args(&["CLIENT", "NOSUCH"])), None);
        assert!(u.may_access(b"public:x") && !u.may_access(b"private:x"));
    }

    #[test]
    fn every_table_category_is_known_and_every_kv_command_is_categorised() {
        for (name, cats) in COMMANDS {
            assert!(cats.iter().all(|c| CATEGORIES.iter().any(|k| in_category(&[c], k))), "{name}");
        }
        for info in kv::commands().filter(|info| info.name != "cashe.expire") {
            assert!(rows().contains_key(info.name), "{} has no categories", info.name);
        }
    }

    #[test]
    fn passwords_are_never_in_debug_output() {
        let acl = parse("user u on >hunter2").unwrap();
        let shown = format!("{acl:?}");
        assert!(!shown.contains("hunter2") && !shown.contains(&hex(&digest(b"hunter2"))), "{shown}");
        assert!(acl.authenticate(b"u", b"hunter2") && !acl.authenticate(b"u", b"hunter3"));
    }
}
