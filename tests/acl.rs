//! `--aclfile` on real `cashe` processes, against a real `redis-server
//! --aclfile` given the same file in the same test: a script's replies
//! byte for byte (NOPERM, WRONGPASS, ACL WHOAMI/USERS/LIST/CAT), every
//! category's `ACL CAT` as sets (Redis lists them in its hash table's
//! order), COMMAND INFO's categories of every command, redis-py with
//! `username=`/`password=`, a bad file stopping the
//! start, and joins into clusters that require a password (`--masterauth`,
//! `--masteruser`). Every process is killed by PID when its guard drops;
//! every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{
    bulk_text, eventually, field, redis_server, run_bounded, run_script, ChildGuard, Client, Server, TempDir,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// SHA-256 of "password", as carol's `#` rule.
const CAROL_HASH: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

fn acl_file(root: &TempDir) -> PathBuf {
    let path = root.0.join("users.acl");
    let text = format!(
        "user alice on >alicepw +@read ~public:*\n\
         user bob off >bobpw +@all ~*\n\
         \n\
         user carol on #{CAROL_HASH} +@all -@dangerous allkeys\n\
         user dave on >davepw -@all +get +client|id +acl|whoami +multi +exec ~k* ~public:*\n\
         user default on nopass ~* +@all\n"
    );
    std::fs::write(&path, text).expect("write the ACL file");
    path
}

/// Each step: the commands sent on one fresh connection, in order.
const SCRIPT: &[&[&str]] = &[
    &[
        "AUTH alice alicepw",
        "ACL WHOAMI",
        "GET public:x",
        "SET public:x 1",
        "GET private:x",
        "MGET public:a private:b",
        "EXISTS public:a public:b",
        "PING",
        "CLIENT ID",
        "GET",
        "NOSUCH x",
        "MULTI",
        "GET public:x",
        "GET private:x",
        "EXEC",
    ],
    &[
        "AUTH bob bobpw",
        "ACL WHOAMI",
        "AUTH carol wrong",
        "AUTH nobody x",
        "AUTH carol password",
        "ACL WHOAMI",
    ],
    &["AUTH carol password", "SET k v", "GET k", "FLUSHALL", "DEL k", "CONFIG GET maxmemory"],
    &[
        "AUTH dave davepw",
        "ACL WHOAMI",
        "GET k1",
        "GET public:y",
        "GET z",
        "CLIENT GETNAME",
        "ACL USERS",
        "SET k1 v",
        "MULTI",
        "GET k1",
        "GET z",
        "EXEC",
    ],
    &[
        "ACL WHOAMI",
        "ACL USERS",
        "ACL LIST",
        "ACL CAT",
        "ACL CAT nosuch",
        "ACL CAT read write",
        "ACL NOSUCH",
        "ACL",
        "AUTH x",
    ],
];

fn words(text: &str) -> Vec<&str> {
    text.split(' ').collect()
}

/// A one-node cashe with `flags`, serving once `ready` (on a fresh
/// connection) answers OK.
fn cashe_with(
    root: &TempDir,
    name: &str,
    join: Option<u16>,
    flags: &[String],
    ready: &[&str],
) -> (ChildGuard, u16) {
    let server = Server::new(root, name);
    let log = std::fs::File::create(&server.log).expect("log file");
    let child = server
        .command(join)
        .args(flags)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn cashe");
    let guard = ChildGuard(child);
    let port = server.client_port;
    eventually(&format!("{name} serving"), || {
        let mut client = Client::connect(port).ok()?;
        for command in ready {
            if matches!(client.call(&words(command)).ok()?, Reply::Error(_)) {
                return None;
            }
        }
        Some(())
    });
    (guard, port)
}

fn aclfile_flag(file: &Path) -> Vec<String> {
    vec![format!("--aclfile={}", file.display())]
}

#[test]
fn an_acl_file_answers_every_step_as_redis_does() {
    let root = TempDir::new("acl");
    let file = acl_file(&root);
    let (_cashe, cashe_port) = cashe_with(&root, "raft0", None, &aclfile_flag(&file), &["SET ready 1"]);
    let (_redis, redis_port) = redis_server(&["--aclfile".as_ref(), file.as_os_str()]);
    let ours = run_script(SCRIPT, cashe_port);
    let theirs = run_script(SCRIPT, redis_port);
    let commands: Vec<&str> = SCRIPT.iter().flat_map(|step| step.iter().copied()).collect();
    assert_eq!(ours.len(), commands.len());
    for ((command, a), b) in commands.iter().zip(&ours).zip(&theirs) {
        let show = |bytes: &[u8]| String::from_utf8_lossy(bytes).escape_debug().to_string();
        if *command == "ACL LIST" {
            compare_acl_list(a, b);
            continue;
        }
        assert_eq!(show(a), show(b), "{command}: cashe (left) and redis-server (right)");
    }
    // Redis 7.2's counters (7.0 has none to compare with): alice's ACL
    // WHOAMI, SET, PING, CLIENT ID, MULTI, EXEC, carol's FLUSHALL, CONFIG GET, dave's
    // CLIENT GETNAME, ACL USERS, SET; the keys of alice's GET private:x
    // (twice) and MGET, and dave's GET z (twice, once in MULTI).
    let mut client = Client::connect(cashe_port).unwrap();
    let info = bulk_text(&client.call(&["INFO", "stats"]).unwrap()).expect("INFO text");
    assert_eq!(field(&info, "acl_access_denied_cmd").as_deref(), Some("11"), "{info}");
    assert_eq!(field(&info, "acl_access_denied_key").as_deref(), Some("5"), "{info}");
    assert_eq!(field(&info, "acl_access_denied_auth").as_deref(), Some("3"), "{info}");
    // CLIENT LIST names each connection's user, never a password.
    let mut carol = Client::connect(cashe_port).unwrap();
    assert_eq!(carol.call(&["AUTH", "carol", "password"]).unwrap(), Reply::ok());
    let list = bulk_text(&client.call(&["CLIENT", "LIST"]).unwrap()).expect("CLIENT LIST text");
    assert!(list.contains(" user=carol "), "{list}");
    for command in
        [&["INFO", "everything"][..], &["CLIENT", "LIST"], &["CONFIG", "GET", "*"], &["ACL", "LIST"]]
    {
        let text = format!("{:?}", client.call(command).unwrap());
        for secret in ["alicepw", "bobpw", "davepw"] {
            assert!(!text.contains(secret), "{command:?} shows a password");
        }
    }
}

/// ACL LIST: byte for byte, but for single-command rules, which Redis 7.0
/// prints in its command table's hash order (cashe: in the file's order, as
/// Redis 7.2): dave's line is compared as a set of words.
fn compare_acl_list(ours: &[u8], theirs: &[u8]) {
    let lines = |raw: &[u8]| -> Vec<String> {
        match harness_parse(raw) {
            Reply::Array(Some(items)) => items.iter().filter_map(bulk_text).collect(),
            other => panic!("ACL LIST is not an array: {other:?}"),
        }
    };
    let (ours, theirs) = (lines(ours), lines(theirs));
    assert_eq!(ours.len(), theirs.len(), "ACL LIST: {ours:?} / {theirs:?}");
    for (a, b) in ours.iter().zip(&theirs) {
        if a.starts_with("user dave ") {
            let words = |line: &str| line.split(' ').map(String::from).collect::<BTreeSet<_>>();
            assert_eq!(words(a), words(b), "ACL LIST's dave, as sets of rules");
        } else {
            assert_eq!(a, b, "ACL LIST: cashe (left), redis-server (right)");
        }
    }
}

fn harness_parse(raw: &[u8]) -> Reply {
    match cashe::protocol::reply::decode(raw) {
        Ok(Some((reply, _))) => reply,
        other => panic!("not one whole reply: {other:?}"),
    }
}

/// Every name `ACL CAT category` lists, for each category.
fn categories(port: u16) -> Vec<(String, BTreeSet<String>)> {
    let mut client = Client::connect(port).unwrap();
    let names = |reply: Reply| -> Vec<String> {
        match reply {
            Reply::Array(Some(items)) => items.iter().filter_map(bulk_text).collect(),
            other => panic!("not a list: {other:?}"),
        }
    };
    let all = names(client.call(&["ACL", "CAT"]).unwrap());
    all.into_iter()
        .map(|category| {
            let listed = names(client.call(&["ACL", "CAT", &category]).unwrap()).into_iter().collect();
            (category, listed)
        })
        .collect()
}

#[test]
fn acl_cat_lists_redis_commands_of_every_category() {
    let root = TempDir::new("acl-cat");
    let file = acl_file(&root);
    let (_cashe, cashe_port) = cashe_with(&root, "raft0", None, &aclfile_flag(&file), &["PING"]);
    let (_redis, redis_port) = redis_server(&["--aclfile".as_ref(), file.as_os_str()]);
    let ours = categories(cashe_port);
    let theirs = categories(redis_port);
    let category_names =
        |c: &[(String, BTreeSet<String>)]| c.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(category_names(&ours), category_names(&theirs), "the categories, in Redis's order");
    let known: BTreeSet<&String> = ours.iter().flat_map(|(_, names)| names).collect();
    // Commands Redis 7.0 does not have (their categories are chosen in
    // tests/py/gen_acl_categories.py).
    let own = [
        "has",
        "cas",
        "client|setinfo",
        "cluster|join",
        "cluster|leave",
        "cluster|remove",
        "cashe.backup",
        "cashe.digest",
    ];
    assert!(known.len() > 150, "cashe's commands are categorised: {}", known.len());
    for ((category, our_names), (_, their_names)) in ours.iter().zip(&theirs) {
        let expected: BTreeSet<&String> = their_names.iter().filter(|n| known.contains(n)).collect();
        let listed: BTreeSet<&String> = our_names.iter().filter(|n| !own.contains(&n.as_str())).collect();
        assert_eq!(
            listed, expected,
            "ACL CAT {category}: cashe (left), redis-server's known to cashe (right)"
        );
    }
}

#[test]
fn redis_py_with_a_user_gets_what_redis_gives() {
    let root = TempDir::new("acl-py");
    let file = acl_file(&root);
    let (_cashe, cashe_port) = cashe_with(&root, "raft0", None, &aclfile_flag(&file), &["SET ready 1"]);
    let (_redis, redis_port) = redis_server(&["--aclfile".as_ref(), file.as_os_str()]);
    let ours = run_redis_py("cashe", cashe_port);
    let theirs = run_redis_py("redis-server", redis_port);
    assert!(
        ours.contains("NoPermissionError: this user has no permissions to run the 'set' command"),
        "{ours}"
    );
    assert_eq!(ours, theirs, "redis-py's transcript: cashe (left), redis-server (right)");
}

fn run_redis_py(against: &str, port: u16) -> String {
    harness::run_python("redis_py_acl.py", &[port.to_string()], Duration::from_secs(60), against)
}

/// Runs the binary with `flags` until it exits (it must, quickly).
fn start_refused(root: &TempDir, flags: &[String]) -> String {
    let server = Server::new(root, "refused");
    let finished = run_bounded(server.command(None).args(flags), Duration::from_secs(30));
    assert_eq!(finished.status.and_then(|s| s.code()), Some(2), "exit code; stderr: {}", finished.stderr);
    finished.stderr
}

#[test]
fn a_bad_acl_file_stops_the_start_naming_each_bad_line() {
    let root = TempDir::new("acl-bad");
    let path = root.0.join("bad.acl");
    std::fs::write(
        &path,
        "user alice on >a ~x:*\nuser bob on +@nosuch\nfoo bar\nuser carol #abc >secretpw\n",
    )
    .unwrap();
    let stderr = start_refused(&root, &aclfile_flag(&path));
    let name = path.display();
    let expected = format!(
        "cashe: Aborting start-up because of ACL errors: {name}:2: Error in applying operation '+@nosuch': \
         Unknown command or category name in ACL. {name}:3 should start with user keyword followed by the \
         username. {name}:4: The password hash must be exactly 64 characters and contain only lowercase \
         hexadecimal characters.\n"
    );
    assert!(stderr.ends_with(&expected), "stderr:\n{stderr}");
    assert!(!stderr.contains("secretpw"), "a password in the file is never shown");
    let missing = root.0.join("missing.acl");
    let stderr = start_refused(&root, &aclfile_flag(&missing));
    assert!(stderr.contains(&format!("--aclfile {}: cannot read it", missing.display())), "{stderr}");
    let both = [aclfile_flag(&acl_file(&root)), vec!["--requirepass=x".to_string()]].concat();
    let stderr = start_refused(&root, &both);
    assert!(stderr.contains("--requirepass and --aclfile cannot be used together"), "{stderr}");
}

/// The voters and learners the node on `port` counts, as `user` with `password`.
fn members(port: u16, auth: &[&str]) -> Option<(usize, usize)> {
    let mut client = Client::connect(port).ok()?;
    let command: Vec<&str> = ["AUTH"].iter().chain(auth).copied().collect();
    (client.call(&command).ok()? == Reply::ok()).then_some(())?;
    let info = bulk_text(&client.call(&["CLUSTER", "INFO"]).ok()?)?;
    Some((field(&info, "cluster_voters")?.parse().ok()?, field(&info, "cluster_learners")?.parse().ok()?))
}

#[test]
fn a_node_joins_a_cluster_with_requirepass_given_masterauth() {
    let root = TempDir::new("acl-join");
    let password = "s3cret".to_string();
    let pass_flag = format!("--requirepass={password}");
    let ready = ["AUTH s3cret", "SET ready 1"];
    let (_first, first_port) = cashe_with(&root, "raft0", None, std::slice::from_ref(&pass_flag), &ready);
    // Without credentials the join is refused at once, and the node stops.
    let refused = Server::new(&root, "raft9");
    let finished = run_bounded(refused.command(Some(first_port)).arg(&pass_flag), Duration::from_secs(60));
    assert!(finished.status.is_some_and(|s| !s.success()), "a join without AUTH fails");
    assert!(finished.stderr.contains("NOAUTH Authentication required."), "{}", finished.stderr);
    // With --masterauth it joins and is promoted to a voter.
    let flags = [pass_flag.clone(), format!("--masterauth={password}")];
    let (_second, second_port) = cashe_with(&root, "raft1", Some(first_port), &flags, &ready);
    eventually("2 voters", || (members(first_port, &[&password])? == (2, 0)).then_some(()));
    let mut client = Client::connect(second_port).unwrap();
    assert_eq!(client.call(&["AUTH", &password]).unwrap(), Reply::ok());
    assert_eq!(client.call(&["GET", "ready"]).unwrap(), Reply::bulk("1"));
    // No log line holds the password (the nodes log at debug level).
    for name in ["raft0", "raft1"] {
        let log = std::fs::read_to_string(root.0.join(format!("{name}.log"))).expect("the node's log");
        assert!(log.contains("joined the cluster") || name == "raft0", "{name}'s log:\n{log}");
        assert!(!log.contains(&password), "{name}'s log shows the password");
    }
    assert!(!finished.stderr.contains(&password), "the refused node's log shows the password");
}

#[test]
fn a_node_joins_as_a_named_user_allowed_cluster_join() {
    let root = TempDir::new("acl-join-user");
    let path = root.0.join("users.acl");
    std::fs::write(
        &path,
        "user default off\nuser admin on >adminpw ~* +@all\nuser reader on >readerpw ~* +@read +cluster|info\n",
    )
    .unwrap();
    let flag = aclfile_flag(&path);
    let ready = ["AUTH admin adminpw", "SET ready 1"];
    let (_first, first_port) = cashe_with(&root, "raft0", None, &flag, &ready);
    // A user without @admin gets NOPERM for CLUSTER JOIN.
    let refused = Server::new(&root, "raft9");
    let mut command = refused.command(Some(first_port));
    command.args(&flag).args(["--masteruser=reader", "--masterauth=readerpw"]);
    let finished = run_bounded(&mut command, Duration::from_secs(60));
    assert!(finished.status.is_some_and(|s| !s.success()), "a reader cannot join");
    assert!(
        finished.stderr.contains("NOPERM this user has no permissions to run the 'cluster|join' command"),
        "{}",
        finished.stderr
    );
    let flags = [flag.clone(), vec!["--masteruser=admin".into(), "--masterauth=adminpw".into()]].concat();
    let (_second, second_port) = cashe_with(&root, "raft1", Some(first_port), &flags, &ready);
    eventually("2 voters", || (members(first_port, &["admin", "adminpw"])? == (2, 0)).then_some(()));
    // Each node checks its own clients before it forwards or proposes.
    for port in [first_port, second_port] {
        let mut reader = Client::connect(port).unwrap();
        assert_eq!(reader.call(&["AUTH", "reader", "readerpw"]).unwrap(), Reply::ok());
        assert_eq!(
            reader.call(&["SET", "ready", "2"]).unwrap(),
            Reply::error("NOPERM this user has no permissions to run the 'set' command")
        );
        assert_eq!(reader.call(&["GET", "ready"]).unwrap(), Reply::bulk("1"));
    }
}

/// The categories COMMAND INFO gives each command (element 7), by name.
fn command_categories(port: u16, names: &[String]) -> Vec<Option<BTreeSet<String>>> {
    let mut client = Client::connect(port).unwrap();
    names
        .iter()
        .map(|name| match client.call(&["COMMAND", "INFO", name]).unwrap() {
            Reply::Array(Some(infos)) => match infos.first() {
                Some(Reply::Array(Some(info))) => match info.get(6) {
                    Some(Reply::Array(Some(cats)) | Reply::Set(cats)) => Some(
                        cats.iter()
                            .map(|c| match c {
                                Reply::Simple(text) => text.clone(),
                                other => panic!("a category: {other:?}"),
                            })
                            .collect(),
                    ),
                    other => panic!("COMMAND INFO {name}: {other:?}"),
                },
                _ => None,
            },
            other => panic!("COMMAND INFO {name}: {other:?}"),
        })
        .collect()
}

#[test]
fn command_info_gives_redis_categories() {
    let root = TempDir::new("acl-command-info");
    let (_cashe, cashe_port) = cashe_with(&root, "raft0", None, &[], &["PING"]);
    let (_redis, redis_port) = redis_server(&[]);
    let names: Vec<String> = match Client::connect(cashe_port).unwrap().call(&["COMMAND", "LIST"]).unwrap() {
        Reply::Array(Some(items)) => items.iter().filter_map(bulk_text).collect(),
        other => panic!("COMMAND LIST: {other:?}"),
    };
    let ours = command_categories(cashe_port, &names);
    let theirs = command_categories(redis_port, &names);
    let mut compared = 0;
    for ((name, a), b) in names.iter().zip(&ours).zip(&theirs) {
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!(a, b, "COMMAND INFO {name}'s categories: cashe (left), redis-server (right)");
            compared += 1;
        }
    }
    assert!(compared > 150, "{compared} commands compared");
}

#[test]
fn a_disabled_default_user_requires_auth_as_in_redis() {
    let root = TempDir::new("acl-default-off");
    let path = root.0.join("users.acl");
    std::fs::write(&path, "user default off\nuser admin on >adminpw ~* +@all\n").unwrap();
    let ready = ["AUTH admin adminpw", "SET ready 1"];
    let (_cashe, cashe_port) = cashe_with(&root, "raft0", None, &aclfile_flag(&path), &ready);
    let (_redis, redis_port) = redis_server(&["--aclfile".as_ref(), path.as_os_str()]);
    let script: &[&[&str]] = &[
        &["GET ready", "ACL WHOAMI", "HELLO 2", "AUTH x", "AUTH default x", "PING", "EXEC", "MULTI", "EXEC"],
        &["AUTH admin adminpw", "ACL WHOAMI", "GET nosuch", "ACL USERS", "AUTH default x", "ACL WHOAMI"],
        &["HELLO 2 AUTH admin wrong", "HELLO 2 AUTH default x", "GET nosuch"],
    ];
    let ours = run_script(script, cashe_port);
    let theirs = run_script(script, redis_port);
    let commands: Vec<&str> = script.iter().flat_map(|step| step.iter().copied()).collect();
    assert_eq!(ours.len(), commands.len());
    for ((command, a), b) in commands.iter().zip(&ours).zip(&theirs) {
        let show = |bytes: &[u8]| String::from_utf8_lossy(bytes).escape_debug().to_string();
        assert_eq!(show(a), show(b), "{command}: cashe (left) and redis-server (right)");
    }
    assert!(String::from_utf8_lossy(&ours[0]).starts_with("-NOAUTH"), "{:?}", ours[0]);
    // Refused before they ran: rejected calls, as Redis counts them.
    let mut admin = Client::connect(cashe_port).unwrap();
    assert_eq!(admin.call(&["AUTH", "admin", "adminpw"]).unwrap(), Reply::ok());
    let stats = bulk_text(&admin.call(&["INFO", "commandstats"]).unwrap()).expect("INFO text");
    assert_eq!(field(&stats, "cmdstat_exec").as_deref(), Some("calls=0,rejected_calls=2,failed_calls=0"));
    assert_eq!(field(&stats, "cmdstat_multi").as_deref(), Some("calls=0,rejected_calls=1,failed_calls=0"));
}
