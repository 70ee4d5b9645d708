//! The TLS cell (issue 15): what TLS costs a write. SET at 64 closed-loop
//! clients against the plain cluster, then at once the same cell against a
//! second three-node cluster with TLS on clients and mutual TLS on peer
//! links (certificates made here with rcgen under the bench directory),
//! its clients speaking TLS 1.3 through rustls. The two halves are
//! neighbours in time, as every cashe/Redis pair of this bench; the number
//! to read is the ratio TLS / plain. The TLS cluster also has a plain
//! client port, used only to wait for it to start and elect.

use super::{measure_with, BenchResult, CasheNode, Cluster, LoadResult, ReplyExt, Settings, Workload};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Clients of the TLS cell.
pub(super) const TLS_CLIENTS: usize = 64;

/// The two halves of the TLS cell.
pub(super) struct TlsCell {
    pub(super) plain: LoadResult,
    pub(super) tls: LoadResult,
}

/// A CA and `raft0..raft2` + `client` certificates in `dir`.
fn make_pki(dir: &Path) -> BenchResult<()> {
    std::fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "cashe bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    for name in ["raft0", "raft1", "raft2", "client"] {
        let mut params = CertificateParams::new(vec![name.to_string(), "localhost".into()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        std::fs::write(dir.join(format!("{name}.pem")), params.signed_by(&key, &ca)?.pem())?;
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem())?;
    }
    Ok(())
}

/// The bench clients' TLS: trust the CA, present `client`.
fn client_config(pki: &Path) -> BenchResult<Arc<rustls::ClientConfig>> {
    #[allow(deprecated)] // ring's provider: see src/runtime/tls.rs
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(pki.join("ca.pem"))? {
        roots.add(certificate?)?;
    }
    let chain = CertificateDer::pem_file_iter(pki.join("client.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(pki.join("client.key"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// Three nodes with TLS, started as the README starts them (joins go
/// through the first node's TLS port); their TLS client addresses.
fn start_cluster(
    dir: &Path,
    logs: &Path,
    pki: &Path,
    extra: &[String],
) -> BenchResult<(Cluster, Vec<SocketAddr>)> {
    std::fs::create_dir_all(dir)?;
    let mut nodes = Vec::new();
    let mut tls_ports = Vec::new();
    for n in 0..3 {
        let name = format!("raft{n}");
        tls_ports.push(super::free_port());
        nodes.push(CasheNode {
            client_port: super::free_port(),
            raft_port: super::free_port(),
            datadir: dir.join(&name),
            log: logs.join(format!("tls-{name}.log")),
            name,
            process: None,
        });
    }
    let args = |n: usize| -> Vec<String> {
        let file = |suffix: &str| pki.join(format!("raft{n}.{suffix}")).display().to_string();
        let mut args = extra.to_vec();
        args.extend([
            format!("--tls-listenaddr=127.0.0.1:{}", tls_ports[n]),
            format!("--tls-cert-file={}", file("pem")),
            format!("--tls-key-file={}", file("key")),
            format!("--tls-ca-cert-file={}", pki.join("ca.pem").display()),
        ]);
        if n > 0 {
            args.push(format!("--leaderaddr=127.0.0.1:{}", tls_ports[0]));
        }
        args
    };
    let mut cluster = Cluster { nodes, extra_args: extra.to_vec() };
    cluster.nodes[0].start(None, &args(0))?;
    super::eventually("the first TLS node to answer", || {
        (cluster.nodes[0].call(&["PING"])?.is_simple()).then_some(())
    })?;
    for n in 1..3 {
        cluster.nodes[n].start(None, &args(n))?;
    }
    cluster.wait_for_voters(3)?;
    let addresses = tls_ports.iter().map(|port| SocketAddr::from(([127, 0, 0, 1], *port))).collect();
    Ok((cluster, addresses))
}

/// SET at [`TLS_CLIENTS`] clients on `plain`, then on a fresh TLS cluster.
pub(super) fn tls_cell(
    settings: &Settings,
    plain: &Cluster,
    data: &Path,
    logs: &Path,
) -> BenchResult<TlsCell> {
    let pki = data.join("tls-pki");
    make_pki(&pki)?;
    let config = client_config(&pki)?;
    let (tls_cluster, addresses) =
        start_cluster(&data.join("tls-cluster"), logs, &pki, &settings.cashe_args)?;
    let plain = measure_with(plain.client_addresses(), TLS_CLIENTS, Workload::Set, settings, None)?;
    let tls = measure_with(addresses, TLS_CLIENTS, Workload::Set, settings, Some(config))?;
    drop(tls_cluster);
    Ok(TlsCell { plain, tls })
}
