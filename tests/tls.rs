//! TLS on real `cashe` processes over 127.0.0.1: a CA and per-node
//! certificates are made here with rcgen in the test's temporary directory
//! (none is checked in); a 3-node cluster runs with a TLS-only client port
//! and mutual TLS between peers. Checked: writes through a follower read
//! through the other with `redis-cli --tls`; redis-py with `ssl=True`; a
//! plain client on the TLS port gets nothing; a node whose certificate is
//! from another CA cannot join and is logged as refused, at the client port
//! and at the peer port; a peer whose certificate names another member than
//! the one it claims to be is closed; bad TLS files stop start-up; in a
//! cluster whose nodes have a plain and a TLS client port, `CLUSTER NODES`
//! shows TLS clients the TLS ports and plain clients the plain ones. Every
//! process is killed by PID when the test ends, and every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::node::wire::{self, PeerFrame, WIRE_VERSION};
use cashe::protocol::reply::{decode, encode_command};
use cashe::protocol::Reply;
use cashe::raft::NodeId;
use harness::{
    bulk_text, eventually, eventually_showing, field, free_port, run_bounded, venv_python, ChildGuard,
    Server, TempDir, PATIENCE,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Certificates in a directory: `ca.pem`, and `NAME.pem` + `NAME.key` for
/// each name, signed by the CA; `rogue-ca.pem` signs the rogue ones.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }
    fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

fn new_ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA certificate")
}

/// A certificate named `name` (CN and DNS SAN), also valid for localhost
/// and 127.0.0.1 (redis-py checks the host name), for servers and clients.
fn write_leaf(dir: &Path, file: &str, name: &str, ca: &CertifiedIssuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(vec![name.to_string(), "localhost".into(), "127.0.0.1".into()])
        .expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let certificate = params.signed_by(&key, ca).expect("sign");
    std::fs::write(dir.join(format!("{file}.pem")), certificate.pem()).expect("write certificate");
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write key");
}

/// The cluster's CA with `raft0..raft2` and `client`; another CA with a
/// `rogue` certificate named `raft3`.
fn make_pki(root: &TempDir) -> Pki {
    let dir = root.0.join("pki");
    std::fs::create_dir_all(&dir).expect("pki dir");
    let ca = new_ca("cashe test CA");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
    for name in ["raft0", "raft1", "raft2", "client"] {
        write_leaf(&dir, name, name, &ca);
    }
    let rogue_ca = new_ca("some other CA");
    std::fs::write(dir.join("rogue-ca.pem"), rogue_ca.pem()).expect("write rogue CA");
    write_leaf(&dir, "rogue", "raft3", &rogue_ca);
    Pki { dir }
}

/// `cashe` with a TLS-only client port (on `server.client_port`) and
/// mutual TLS on its peer port, with the certificate `cert`.
fn tls_command(server: &Server, pki: &Pki, cert: &str, ca: &Path, join: Option<u16>) -> Command {
    tls_command_beside(server, pki, cert, ca, join, None)
}

/// As [`tls_command`], with a plain client port beside the TLS one when
/// `plain_port` is given.
fn tls_command_beside(
    server: &Server,
    pki: &Pki,
    cert: &str,
    ca: &Path,
    join: Option<u16>,
    plain_port: Option<u16>,
) -> Command {
    let plain = plain_port.map(|port| format!("127.0.0.1:{port}")).unwrap_or_default();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cashe"));
    command
        .arg(format!("--id={}", server.name))
        .args(["--listenaddr", &plain])
        .arg(format!("--tls-listenaddr=127.0.0.1:{}", server.client_port))
        .arg(format!("--raftaddr=127.0.0.1:{}", server.raft_port))
        .arg(format!("--datadir={}", server.datadir.display()))
        .arg(format!("--tls-cert-file={}", pki.cert(cert).display()))
        .arg(format!("--tls-key-file={}", pki.key(cert).display()))
        .arg(format!("--tls-ca-cert-file={}", ca.display()))
        .arg("--log-level=debug");
    if let Some(port) = join {
        command.arg(format!("--leaderaddr=127.0.0.1:{port}"));
    }
    command
}

fn spawn_logged(mut command: Command, log: &Path) -> ChildGuard {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open log");
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("spawn cashe");
    ChildGuard(child)
}

#[allow(deprecated)] // ring's provider: see src/runtime/tls.rs
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `ca`, presenting certificate `name`.
fn client_config(pki: &Pki, ca: &Path, name: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(certificate.expect("CA certificate")).expect("add CA");
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.cert(name)).expect("cert").map(|c| c.expect("cert")).collect();
    let key = PrivateKeyDer::from_pem_file(pki.key(name)).expect("key");
    let config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    Arc::new(config)
}

type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(port: u16, config: &Arc<rustls::ClientConfig>) -> std::io::Result<TlsClient> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").expect("name");
    let connection = rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    Ok(rustls::StreamOwned::new(connection, tcp))
}

/// One command on a fresh TLS connection; any failure is an error reply.
fn tls_call(port: u16, config: &Arc<rustls::ClientConfig>, args: &[&str]) -> Reply {
    let attempt = || -> std::io::Result<Reply> {
        let mut stream = tls_connect(port, config)?;
        let mut request = Vec::new();
        encode_command(args, &mut request);
        stream.write_all(&request)?;
        stream.flush()?;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((reply, _)) = decode(&buffer).map_err(std::io::Error::other)? {
                return Ok(reply);
            }
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
    };
    attempt().unwrap_or_else(|e| Reply::Error(format!("IO {e}")))
}

/// `redis-cli --tls` with the `client` certificate; its output.
fn redis_cli(pki: &Pki, port: u16, args: &[&str]) -> String {
    redis_cli_as(pki, Some("client"), port, args)
}

/// `redis-cli --tls` with certificate `cert`, or none; its output.
fn redis_cli_as(pki: &Pki, cert: Option<&str>, port: u16, args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    command.arg("--tls").arg("--cacert").arg(pki.ca());
    if let Some(cert) = cert {
        command.arg("--cert").arg(pki.cert(cert)).arg("--key").arg(pki.key(cert));
    }
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args);
    let finished = run_bounded(&mut command, Duration::from_secs(20));
    assert!(finished.status.is_some(), "redis-cli {args:?} hung");
    finished.stdout.trim().to_string() + &finished.stderr
}

struct TlsCluster {
    servers: Vec<Server>,
    /// Each server's plain client port, when it has one beside TLS.
    plain_ports: Vec<Option<u16>>,
    _guards: Vec<ChildGuard>,
    pki: Pki,
    client: Arc<rustls::ClientConfig>,
    _root: TempDir,
}

impl TlsCluster {
    /// Three nodes with TLS-only client ports.
    fn start(label: &str) -> TlsCluster {
        TlsCluster::start_with(label, false, None)
    }

    /// Three nodes, each with a plain client port beside its TLS one if
    /// `plain_too`, and the cluster secret `secret` if given (its
    /// handshake then runs inside the mutual TLS of every peer link).
    fn start_with(label: &str, plain_too: bool, secret: Option<&str>) -> TlsCluster {
        let root = TempDir::new(label);
        let pki = make_pki(&root);
        let client = client_config(&pki, &pki.ca(), "client");
        let mut cluster = TlsCluster {
            servers: Vec::new(),
            plain_ports: Vec::new(),
            _guards: Vec::new(),
            pki,
            client,
            _root: root,
        };
        for i in 0..3 {
            let server = Server::new(&cluster._root, &format!("raft{i}"));
            let join = cluster.servers.first().map(|s: &Server| s.client_port);
            let plain_port = plain_too.then(free_port);
            cluster.plain_ports.push(plain_port);
            let ca = cluster.pki.ca();
            let mut command = tls_command_beside(&server, &cluster.pki, &server.name, &ca, join, plain_port);
            if let Some(secret) = secret {
                command.env("CASHE_CLUSTER_SECRET", secret);
            }
            cluster._guards.push(spawn_logged(command, &server.log));
            // Joins one at a time, so the members get numbers 1, 2, 3.
            let answers = || {
                (tls_call(server.client_port, &cluster.client, &["PING"]) == Reply::Simple("PONG".into()))
                    .then_some(())
            };
            eventually_showing(&format!("{} answers over TLS", server.name), || server.log_text(), answers);
            cluster.servers.push(server);
        }
        cluster.wait_for_voters(3);
        cluster
    }

    fn info(&self, i: usize) -> Option<String> {
        bulk_text(&tls_call(self.servers[i].client_port, &self.client, &["CLUSTER", "INFO"]))
    }

    fn leader(&self) -> usize {
        eventually("an agreed leader", || {
            let mut named = None;
            for i in 0..self.servers.len() {
                let leader = field(&self.info(i)?, "cluster_leader").filter(|l| l != "-")?;
                if named.get_or_insert(leader.clone()) != &leader {
                    return None;
                }
            }
            self.servers.iter().position(|s| Some(&s.name) == named.as_ref())
        })
    }

    fn wait_for_voters(&self, voters: usize) {
        eventually(&format!("{voters} voters"), || {
            let info = self.info(self.leader())?;
            let size: usize = field(&info, "cluster_voters")?.parse().ok()?;
            let learners: usize = field(&info, "cluster_learners")?.parse().ok()?;
            (size == voters && learners == 0).then_some(())
        })
    }

    fn logs(&self) -> String {
        self.servers.iter().map(|s| format!("==== {}\n{}", s.name, s.log_text())).collect()
    }
}

/// Reads until the server closes (true) or `limit` passes (false).
fn closed_within(stream: &mut impl Read, limit: Duration, received: &mut Vec<u8>) -> bool {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    while started.elapsed() < limit {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_tls_cluster_serves_tls_clients_and_refuses_strangers() {
    let cluster = TlsCluster::start("tls-cluster");
    let leader = cluster.leader();
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (writer, reader) =
        (cluster.servers[followers[0]].client_port, cluster.servers[followers[1]].client_port);

    // redis-cli --tls: a write through a follower, read through the other.
    eventually("SET through a follower with redis-cli --tls", || {
        (redis_cli(&cluster.pki, writer, &["SET", "tls:k", "secret value"]) == "OK").then_some(())
    });
    eventually("GET through the other follower with redis-cli --tls", || {
        (redis_cli(&cluster.pki, reader, &["GET", "tls:k"]) == "secret value").then_some(())
    });
    // A large value crosses TLS clients and TLS peer links whole.
    let big = "x".repeat(8 << 20);
    eventually("SET of 8 MiB through a follower", || {
        (tls_call(writer, &cluster.client, &["SET", "tls:big", &big]) == Reply::ok()).then_some(())
    });
    eventually("GET of 8 MiB through the other follower", || {
        (tls_call(reader, &cluster.client, &["GET", "tls:big"]) == Reply::bulk(big.as_str())).then_some(())
    });
    // CLUSTER NODES advertises the TLS port (the only client port here).
    let nodes = redis_cli(&cluster.pki, reader, &["CLUSTER", "NODES"]);
    assert!(nodes.contains(&format!("127.0.0.1:{writer}@")), "CLUSTER NODES: {nodes}");

    // A plain client on the TLS port gets nothing and is closed.
    let mut plain = TcpStream::connect(("127.0.0.1", writer)).expect("connect");
    plain.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    plain.write_all(b"PING\r\n").expect("send");
    let mut received = Vec::new();
    assert!(closed_within(&mut plain, Duration::from_secs(15), &mut received), "plain client not closed");
    assert!(!String::from_utf8_lossy(&received).contains("PONG"), "a plain client got {received:?}");

    // A node with a certificate from another CA cannot join.
    let rogue = Server::new(&cluster._root, "raft3");
    let mut command = tls_command(&rogue, &cluster.pki, "rogue", &cluster.pki.ca(), Some(writer));
    command.arg("--join-timeout-s=3");
    let joined = run_bounded(&mut command, PATIENCE);
    assert!(
        joined.status.is_some_and(|s| !s.success()),
        "the rogue node's join did not fail: {}",
        joined.stderr
    );
    assert!(joined.stderr.contains("could not join"), "rogue node: {}", joined.stderr);
    // The join's refusal: its certificate, not the plain client's bytes above.
    let refused = |server: &Server| {
        server.log_text().lines().any(|l| l.contains("refused client") && l.contains("UnknownIssuer"))
    };
    assert!(cluster.servers.iter().any(refused), "no node logged the refused join\n{}", cluster.logs());
    for server in &cluster.servers {
        for line in server.log_text().lines().filter(|l| l.contains("refused")).take(2) {
            println!("{}: {line}", server.name);
        }
    }
    // A join over TLS must come with the joining member's certificate.
    let join = tls_call(writer, &cluster.client, &["CLUSTER", "JOIN", "raft7", "127.0.0.1:1", "127.0.0.1:2"]);
    assert!(
        matches!(&join, Reply::Error(e) if e.contains("does not name member 'raft7'")),
        "CLUSTER JOIN with another member's certificate: {join:?}"
    );
    // So must the join's form with a TLS client address.
    let join = ["CLUSTER", "JOIN", "raft7", "127.0.0.1:1", "127.0.0.1:2", "TLS", "127.0.0.1:3"];
    let join = tls_call(writer, &cluster.client, &join);
    assert!(
        matches!(&join, Reply::Error(e) if e.contains("does not name member 'raft7'")),
        "CLUSTER JOIN … TLS addr with another member's certificate: {join:?}"
    );
    let nodes = bulk_text(&tls_call(writer, &cluster.client, &["CLUSTER", "NODES"])).unwrap_or_default();
    assert_eq!(nodes.lines().count(), 3, "membership changed: {nodes}");
    assert!(!nodes.contains("raft3"), "the rogue node is a member: {nodes}");

    // Nor can it speak on the peer port: refused at the handshake, logged
    // with its address.
    let peer = &cluster.servers[leader];
    let rogue_config = client_config(&cluster.pki, &cluster.pki.ca(), "rogue");
    let cluster_id =
        u64::from_str_radix(&field(&cluster.info(leader).expect("info"), "cluster_id").unwrap(), 16)
            .expect("cluster id");
    let hello = |from: u64| {
        let mut bytes = Vec::new();
        let frame = PeerFrame::Hello {
            version: WIRE_VERSION,
            cluster_id,
            from: NodeId(from),
            raft_addr: "127.0.0.1:1".into(),
        };
        wire::encode(&frame, &mut bytes).expect("encode");
        bytes
    };
    let mut stream = tls_connect(peer.raft_port, &rogue_config).expect("connect");
    let _ = stream.write_all(&hello(4)).and_then(|()| stream.flush());
    let mut received = Vec::new();
    assert!(closed_within(&mut stream, Duration::from_secs(15), &mut received), "rogue peer not closed");
    eventually("the refused peer in the log", || {
        peer.log_text()
            .lines()
            .any(|l| l.contains("refused peer 127.0.0.1:") && l.contains("certificate"))
            .then_some(())
    });

    // A member's certificate speaking for another member: closed and logged.
    let impostor_name = cluster.servers[followers[0]].name.clone();
    // raft{i} joined as member i + 1.
    let impostor_of = followers[1] as u64 + 1;
    let impostor = client_config(&cluster.pki, &cluster.pki.ca(), &impostor_name);
    let mut stream = tls_connect(peer.raft_port, &impostor).expect("connect");
    let _ = stream.write_all(&hello(impostor_of)).and_then(|()| stream.flush());
    let mut received = Vec::new();
    assert!(closed_within(&mut stream, Duration::from_secs(15), &mut received), "impostor not closed");
    eventually("the impostor in the log", || {
        peer.log_text().lines().any(|l| l.contains(&format!("claims member {impostor_of}"))).then_some(())
    });

    // A client's certificate (from the same CA, so it passes the peer
    // port's TLS) claiming a member number nobody has: closed and logged.
    // Admitted, it could send a Raft message of a later term as "member
    // 99" and depose the leader.
    let client_as_peer = client_config(&cluster.pki, &cluster.pki.ca(), "client");
    let mut stream = tls_connect(peer.raft_port, &client_as_peer).expect("connect");
    let _ = stream.write_all(&hello(99)).and_then(|()| stream.flush());
    let mut received = Vec::new();
    assert!(
        closed_within(&mut stream, Duration::from_secs(15), &mut received),
        "client certificate not closed"
    );
    eventually("the client certificate in the log", || {
        peer.log_text().lines().any(|l| l.contains("claims member 99, which no member is")).then_some(())
    });

    for line in peer.log_text().lines().filter(|l| l.contains("refused peer") || l.contains("claims member"))
    {
        println!("{}: {line}", peer.name);
    }
    // The cluster still works.
    assert_eq!(redis_cli(&cluster.pki, reader, &["GET", "tls:k"]), "secret value");
}

/// Plain `redis-cli` on `port`; its output.
fn plain_redis_cli(port: u16, args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args);
    let finished = run_bounded(&mut command, Duration::from_secs(20));
    assert!(finished.status.is_some(), "redis-cli {args:?} hung");
    finished.stdout.trim().to_string() + &finished.stderr
}

/// Nodes with both client ports advertise both: `CLUSTER NODES` over TLS
/// (`redis-cli --tls`) shows every member's TLS port, over a plain
/// connection its plain port, as Redis shows TLS clients `tls-port`s.
#[test]
fn cluster_nodes_shows_tls_clients_the_tls_ports_and_plain_clients_the_plain_ones() {
    // Everything on: plain and TLS client ports, mutual TLS between peers
    // and the cluster secret's handshake inside it.
    let cluster = TlsCluster::start_with("tls-advertise", true, Some("tls and a secret"));
    let line = |server: &Server, port: u16| format!("{} 127.0.0.1:{port}@{} ", server.name, server.raft_port);
    let shows = |nodes: &str, ports: &dyn Fn(usize) -> u16| {
        cluster.servers.iter().enumerate().all(|(i, server)| nodes.contains(&line(server, ports(i))))
    };
    let tls_port = |i: usize| cluster.servers[i].client_port;
    let plain_port = |i: usize| cluster.plain_ports[i].expect("a plain port");
    for asked in 0..3 {
        let over_tls = eventually("CLUSTER NODES over TLS with every TLS port", || {
            let nodes = redis_cli(&cluster.pki, tls_port(asked), &["CLUSTER", "NODES"]);
            shows(&nodes, &tls_port).then_some(nodes)
        });
        assert!(!(0..3).any(|i| over_tls.contains(&format!(":{}@", plain_port(i)))), "{over_tls}");
        let over_plain = eventually("CLUSTER NODES over plain with every plain port", || {
            let nodes = plain_redis_cli(plain_port(asked), &["CLUSTER", "NODES"]);
            shows(&nodes, &plain_port).then_some(nodes)
        });
        assert!(!(0..3).any(|i| over_plain.contains(&format!(":{}@", tls_port(i)))), "{over_plain}");
        if asked == 0 {
            println!("CLUSTER NODES over TLS:\n{over_tls}\nover plain:\n{over_plain}");
        }
    }
    // Both ports serve the same data.
    assert_eq!(plain_redis_cli(plain_port(1), &["SET", "both:k", "v"]), "OK");
    eventually("the plain write read over TLS", || {
        (redis_cli(&cluster.pki, tls_port(2), &["GET", "both:k"]) == "v").then_some(())
    });
    assert!(
        !cluster.logs().contains("refused a peer connection"),
        "a member was refused:\n{}",
        cluster.logs()
    );
}

/// One TLS node (its own cluster) with extra flags; its handle and guard.
fn single_node(root: &TempDir, pki: &Pki, label: &str, flags: &[&str]) -> (Server, ChildGuard) {
    let mut server = Server::new(root, "raft0");
    server.datadir = root.0.join(label);
    server.log = root.0.join(format!("{label}.log"));
    let mut command = tls_command(&server, pki, "raft0", &pki.ca(), None);
    command.args(flags);
    let guard = spawn_logged(command, &server.log);
    let client = client_config(pki, &pki.ca(), "client");
    eventually("the node answers over TLS", || {
        (tls_call(server.client_port, &client, &["PING"]) == Reply::Simple("PONG".into())).then_some(())
    });
    (server, guard)
}

#[test]
fn tls_auth_clients_and_peer_cert_allowed_cn_have_their_meaning() {
    let root = TempDir::new("tls-auth");
    let pki = make_pki(&root);
    let (required, _guard) = single_node(&root, &pki, "required", &[]);
    let no_cert = redis_cli_as(&pki, None, required.client_port, &["PING"]);
    assert!(
        !no_cert.contains("PONG"),
        "tls-auth-clients yes (default) served a client without one: {no_cert}"
    );
    let (optional, _guard) = single_node(
        &root,
        &pki,
        "optional",
        &["--tls-auth-clients=optional", "--peer-cert-allowed-cn=raft1,raft5"],
    );
    assert_eq!(redis_cli_as(&pki, None, optional.client_port, &["PING"]), "PONG");
    assert_eq!(redis_cli_as(&pki, Some("client"), optional.client_port, &["PING"]), "PONG");
    let rogue = redis_cli_as(&pki, Some("rogue"), optional.client_port, &["PING"]);
    assert!(!rogue.contains("PONG"), "optional accepted a certificate from another CA: {rogue}");
    let (open, _guard) = single_node(&root, &pki, "open", &["--tls-auth-clients=no"]);
    assert_eq!(redis_cli_as(&pki, None, open.client_port, &["PING"]), "PONG");
    // No client certificate is asked for, so no join can prove one here.
    let raft1 = client_config(&pki, &pki.ca(), "raft1");
    let join =
        tls_call(open.client_port, &raft1, &["CLUSTER", "JOIN", "raft1", "127.0.0.1:1", "127.0.0.1:2"]);
    assert!(
        matches!(&join, Reply::Error(e) if e.contains("--tls-auth-clients yes or optional")),
        "CLUSTER JOIN on a port that asks no certificate: {join:?}"
    );
    // A connection that never starts its handshake is closed (after the
    // handshake timeout), on the client port and on the peer port.
    let silent: Vec<(u16, TcpStream)> = [open.client_port, open.raft_port]
        .into_iter()
        .map(|port| (port, TcpStream::connect(("127.0.0.1", port)).expect("connect")))
        .collect();
    for (port, mut silent) in silent {
        silent.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let mut received = Vec::new();
        assert!(
            closed_within(&mut silent, PATIENCE, &mut received),
            "a silent connection to {port} stayed open"
        );
        assert!(received.is_empty(), "a silent connection got {received:?}");
    }
    // raft2 is from the CA but not an allowed name: it cannot join ...
    let raft2 = client_config(&pki, &pki.ca(), "raft2");
    let join =
        tls_call(optional.client_port, &raft2, &["CLUSTER", "JOIN", "raft2", "127.0.0.1:1", "127.0.0.1:2"]);
    assert!(
        matches!(&join, Reply::Error(e) if e.contains("not in --peer-cert-allowed-cn")),
        "CLUSTER JOIN with a certificate not allowed: {join:?}"
    );
    // ... nor link on the peer port.
    let mut stream = tls_connect(optional.raft_port, &raft2).expect("connect");
    let _ = stream.write_all(b"hello").and_then(|()| stream.flush());
    assert!(closed_within(&mut stream, Duration::from_secs(15), &mut Vec::new()), "raft2 not closed");
    eventually("the refusal in the log", || {
        optional.log_text().lines().any(|l| l.contains("not in --peer-cert-allowed-cn")).then_some(())
    });
}

#[test]
fn a_tls_cluster_reconnects_after_the_leader_is_killed_and_restarted() {
    let mut cluster = TlsCluster::start("tls-restart");
    let leader = cluster.leader();
    let _ = cluster._guards[leader].0.kill();
    let _ = cluster._guards[leader].0.wait();
    let survivor = (leader + 1) % 3;
    let port = cluster.servers[survivor].client_port;
    eventually("a write after the leader's kill", || {
        (tls_call(port, &cluster.client, &["SET", "after", "kill"]) == Reply::ok()).then_some(())
    });
    let restarted = &cluster.servers[leader];
    let command = tls_command(restarted, &cluster.pki, &restarted.name, &cluster.pki.ca(), None);
    cluster._guards[leader] = spawn_logged(command, &restarted.log);
    eventually("the restarted node reads the write made without it", || {
        (tls_call(restarted.client_port, &cluster.client, &["GET", "after"]) == Reply::bulk("kill"))
            .then_some(())
    });
    cluster.wait_for_voters(3);
    assert!(
        !cluster.logs().contains("claims member"),
        "a member's own certificate was refused:\n{}",
        cluster.logs()
    );
}

#[test]
fn redis_py_with_ssl_works_against_a_tls_cluster() {
    let cluster = TlsCluster::start("tls-py");
    let leader = cluster.leader();
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/redis_py_tls.py");
    let mut command = Command::new(venv_python());
    command
        .arg(&script)
        .arg(cluster.servers[followers[0]].client_port.to_string())
        .arg(cluster.servers[followers[1]].client_port.to_string())
        .arg(cluster.pki.ca())
        .arg(cluster.pki.cert("client"))
        .arg(cluster.pki.key("client"));
    let finished = run_bounded(&mut command, Duration::from_secs(120));
    assert!(
        finished.status.is_some_and(|s| s.success()),
        "redis-py over TLS: {:?}\n{}{}\n{}",
        finished.status,
        finished.stdout,
        finished.stderr,
        cluster.logs()
    );
    assert!(finished.stdout.contains("GET tls:py (other member) -> b'over tls'"), "{}", finished.stdout);
}

#[test]
fn bad_tls_files_stop_start_up_with_a_message() {
    let root = TempDir::new("tls-files");
    let pki = make_pki(&root);
    let server = Server::new(&root, "raft0");
    let run = |command: &mut Command| {
        let finished = run_bounded(command, PATIENCE);
        assert_eq!(finished.status.and_then(|s| s.code()), Some(2), "{}", finished.stderr);
        finished.stderr
    };
    let mut missing = tls_command(&server, &pki, "raft0", &pki.dir.join("no-such-ca.pem"), None);
    let stderr = run(&mut missing);
    assert!(stderr.contains("cannot read the --tls-ca-cert-file"), "{stderr}");
    let mut not_pem = tls_command(&server, &pki, "raft0", &pki.key("raft0"), None);
    let stderr = run(&mut not_pem);
    assert!(stderr.contains("--tls-ca-cert-file") && stderr.contains("no PEM certificate"), "{stderr}");
    let mut wrong_name = tls_command(&server, &pki, "raft1", &pki.ca(), None);
    let stderr = run(&mut wrong_name);
    assert!(stderr.contains("not this node's --id \"raft0\""), "{stderr}");
    // TLS files but no TLS client port: joins would have nowhere to go.
    let mut no_port = Command::new(env!("CARGO_BIN_EXE_cashe"));
    no_port
        .arg("--id=raft0")
        .arg(format!("--datadir={}", server.datadir.display()))
        .arg(format!("--listenaddr=127.0.0.1:{}", server.client_port))
        .arg(format!("--raftaddr=127.0.0.1:{}", server.raft_port))
        .arg(format!("--tls-cert-file={}", pki.cert("raft0").display()))
        .arg(format!("--tls-key-file={}", pki.key("raft0").display()))
        .arg(format!("--tls-ca-cert-file={}", pki.ca().display()));
    let stderr = run(&mut no_port);
    assert!(stderr.contains("TLS needs a --tls-listenaddr"), "{stderr}");
    let mut no_key = Command::new(env!("CARGO_BIN_EXE_cashe"));
    no_key.arg(format!("--tls-cert-file={}", pki.cert("raft0").display()));
    let stderr = run(&mut no_key);
    assert!(stderr.contains("TLS needs all of"), "{stderr}");
    assert!(!server.datadir.exists(), "a refused start-up made its data directory");
}
