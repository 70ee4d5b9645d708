//! TLS for clients and mutual TLS between peers, with rustls (ring, no
//! OpenSSL) over glommio's sockets.
//!
//! [`TlsSettings::load`] reads the PEM files named by `--tls-cert-file`,
//! `--tls-key-file` and `--tls-ca-cert-file` once, at start-up (a missing or
//! bad file stops it with a message naming the file), and builds three
//! rustls configurations from them:
//! - the client port's (`--tls-listenaddr`): this node's certificate; a
//!   client certificate from the CA is required, optional or not asked for,
//!   as `--tls-auth-clients yes|optional|no` says (Redis's meaning);
//! - the peer port's (`--raftaddr`): a client certificate from the CA is
//!   always required;
//! - outbound peer links' and `CLUSTER JOIN`'s: this node presents its own
//!   certificate and accepts only a server certificate from the CA.
//!
//! Certificates name members, not hosts: no host name is checked. Instead a
//! peer's certificate is bound to its member id ([`PeerIdentity`]): the
//! peer's certificate must carry, as its subject CN or a DNS SAN, the name
//! (`--id`) that the replicated directory has for the id the peer claims in
//! its `Hello` (inbound) or for the id this node meant to reach (outbound);
//! a mismatch closes the link. `--peer-cert-allowed-cn` further restricts
//! peers to certificates carrying one of the listed names.
//!
//! A handshake that does not finish within [`HANDSHAKE_TIMEOUT`] is
//! abandoned and its connection closed. [`Stream`] is a plain or TLS
//! connection behind one `AsyncRead + AsyncWrite`: the client and peer code
//! serve either. Nothing here decides anything about Raft or the key space.

use super::Sparse;
use crate::protocol::Reply;
use crate::raft::NodeId;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_rustls::{TlsAcceptor, TlsConnector};
use glommio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A client or peer that has not finished its handshake by then is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The server name outbound peer links and joins put in their handshake.
/// Never checked (see [`CaOnly`]); SNI is off, so it is not even sent.
const PEER_SERVER_NAME: &str = "cashe-peer";

/// `--tls-auth-clients`, as Redis: whether the client port asks clients
/// for a certificate from the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthClients {
    /// A client without a certificate from the CA is refused (the default).
    Yes,
    /// A client may present one; if it does, it must be from the CA.
    Optional,
    /// Clients are not asked for one.
    No,
}

impl std::str::FromStr for AuthClients {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "yes" => Ok(AuthClients::Yes),
            "optional" => Ok(AuthClients::Optional),
            "no" => Ok(AuthClients::No),
            _ => Err(format!("--tls-auth-clients {text:?}: use yes, no or optional")),
        }
    }
}

/// The files and choices TLS is built from (the command line's).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub auth_clients: AuthClients,
    /// `--peer-cert-allowed-cn`: when not empty, a peer's certificate must
    /// carry one of these names (CN or DNS SAN).
    pub peer_allowed_names: Vec<String>,
}

/// Everything a node needs to speak TLS, built once at start-up.
#[derive(Debug)]
pub struct TlsSettings {
    clients: Arc<ServerConfig>,
    peer_server: Arc<ServerConfig>,
    peer_client: Arc<ClientConfig>,
    peer_allowed_names: Vec<String>,
    /// The names this node's own certificate carries.
    pub own_names: CertNames,
}

/// ring, the crypto the rest of the tree already uses (no aws-lc, no C
/// toolchain beyond ring's). rustls 0.23.48 deprecated ring's provider only
/// to point at aws-lc-rs's post-quantum key exchange; ring's X25519, P-256
/// and P-384 key exchanges remain supported.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

fn load_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(path, what)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the {what} {}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("the {what} {} holds no PEM certificate", path.display()));
    }
    Ok(certificates)
}

impl TlsSettings {
    /// Reads the files and builds the configurations; any problem is an
    /// error naming the file (start-up stops on it).
    pub fn load(files: &TlsFiles) -> Result<TlsSettings, String> {
        let chain = load_certificates(&files.cert, "--tls-cert-file")?;
        let key_pem = read_file(&files.key, "--tls-key-file")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            format!("the --tls-key-file {}: no usable PEM private key ({e})", files.key.display())
        })?;
        let mut roots = RootCertStore::empty();
        for certificate in load_certificates(&files.ca, "--tls-ca-cert-file")? {
            roots.add(certificate).map_err(|e| {
                format!("the --tls-ca-cert-file {}: not a usable CA certificate: {e}", files.ca.display())
            })?;
        }
        let roots = Arc::new(roots);
        let own_names = CertNames::parse(&chain[0]).ok_or_else(|| {
            format!("the --tls-cert-file {}: cannot read the certificate's names", files.cert.display())
        })?;
        let cert_error = |e: rustls::Error| {
            format!(
                "the --tls-cert-file {} and --tls-key-file {} do not make a usable pair: {e}",
                files.cert.display(),
                files.key.display()
            )
        };
        let verifier_error = |e: rustls::server::VerifierBuilderError| {
            format!("the --tls-ca-cert-file {}: {e}", files.ca.display())
        };
        let required = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(verifier_error)?;
        let clients_verifier = match files.auth_clients {
            AuthClients::Yes => required.clone(),
            AuthClients::Optional => WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .allow_unauthenticated()
                .build()
                .map_err(verifier_error)?,
            AuthClients::No => WebPkiClientVerifier::no_client_auth(),
        };
        let server = |verifier| -> Result<ServerConfig, String> {
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(cert_error)
        };
        let clients = server(clients_verifier)?;
        let peer_server = server(required)?;
        let mut peer_client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaOnly { roots, provider: provider() }))
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(cert_error)?;
        peer_client.enable_sni = false;
        Ok(TlsSettings {
            clients: Arc::new(clients),
            peer_server: Arc::new(peer_server),
            peer_client: Arc::new(peer_client),
            peer_allowed_names: files.peer_allowed_names.clone(),
            own_names,
        })
    }

    /// The blocking client configuration `CLUSTER JOIN` uses over TLS.
    pub fn join_config(&self) -> Arc<ClientConfig> {
        self.peer_client.clone()
    }

    /// A `ServerName` for [`join_config`](Self::join_config) (never checked).
    pub fn join_server_name() -> ServerName<'static> {
        ServerName::try_from(PEER_SERVER_NAME).expect("a valid DNS name")
    }

    fn allowed(&self, names: &CertNames) -> bool {
        self.peer_allowed_names.is_empty() || self.peer_allowed_names.iter().any(|n| names.has(n))
    }
}

/// Verifies a peer's server certificate against the CA only. Peers are
/// reached by address and named by member id, so the host name the usual
/// verifier checks means nothing here; the member name is checked once the
/// handshake is done ([`connect_peer`]).
#[derive(Debug)]
struct CaOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let certificate = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &certificate,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A client or peer connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    /// Accepted on a TLS listener (we are the TLS server).
    Accepted(Box<futures_rustls::server::TlsStream<TcpStream>>),
    /// An outbound TLS peer link (we are the TLS client).
    Connected(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// The socket under the TLS, for its options.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(stream) => stream,
            Stream::Accepted(stream) => stream.get_ref().0,
            Stream::Connected(stream) => stream.get_ref().0,
        }
    }

    /// The names in the other side's certificate, if it presented one.
    pub fn peer_names(&self) -> Option<CertNames> {
        let certificates = match self {
            Stream::Plain(_) => None,
            Stream::Accepted(stream) => stream.get_ref().1.peer_certificates(),
            Stream::Connected(stream) => stream.get_ref().1.peer_certificates(),
        };
        certificates.and_then(|c| c.first()).and_then(CertNames::parse)
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Accepted(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            Stream::Connected(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Accepted(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Stream::Connected(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Accepted(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            Stream::Connected(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_close(cx),
            Stream::Accepted(stream) => Pin::new(stream.as_mut()).poll_close(cx),
            Stream::Connected(stream) => Pin::new(stream.as_mut()).poll_close(cx),
        }
    }
}

/// On a node with TLS, `CLUSTER JOIN name ...` is refused unless it comes
/// over TLS from a client whose certificate names the joining member (the
/// certificate its peer links will present) and would be allowed as a
/// peer (`--peer-cert-allowed-cn`): `Some(error)` to answer it with.
/// `settings` are the TLS port's (`None` on the plain port), `certificate`
/// the connection's (`None`: plain, or none shown).
pub fn refuse_join(
    args: &[Vec<u8>],
    tls_configured: bool,
    settings: Option<&TlsSettings>,
    certificate: Option<&CertNames>,
) -> Option<Reply> {
    // Every form: `[TLS addr]` and a secret's proof may follow the three
    // addresses, and neither replaces the certificate.
    let is_join =
        args.len() >= 5 && args[0].eq_ignore_ascii_case(b"CLUSTER") && args[1].eq_ignore_ascii_case(b"JOIN");
    if !tls_configured || !is_join {
        return None;
    }
    let name = String::from_utf8_lossy(&args[2]);
    match certificate {
        Some(names) if !names.has(&name) => Some(Reply::error(format!(
            "ERR CLUSTER JOIN: the client certificate {names} does not name member '{name}'"
        ))),
        Some(names) if !settings.is_some_and(|s| s.allowed(names)) => Some(Reply::error(format!(
            "ERR CLUSTER JOIN: the client certificate {names} is not in --peer-cert-allowed-cn"
        ))),
        Some(_) => None,
        None => Some(Reply::error(
            "ERR CLUSTER JOIN needs the joining node's certificate: join through a TLS port with \
             --tls-auth-clients yes or optional",
        )),
    }
}

thread_local! {
    static CLIENT_REFUSALS: Sparse = const { Sparse::new() };
    static PEER_REFUSALS: Sparse = const { Sparse::new() };
    static PEER_NAME_REFUSALS: Sparse = const { Sparse::new() };
}

/// `future`, or a timeout error after [`HANDSHAKE_TIMEOUT`].
async fn bounded<T>(future: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    let late = async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")))
    };
    futures_lite::future::or(future, late).await
}

/// A client connection on the client port: plain without `config`, else
/// once its handshake is done. `None` (logged) if the handshake failed.
pub async fn accept_client(tcp: TcpStream, config: Option<&TlsSettings>) -> Option<Stream> {
    let Some(settings) = config else {
        return Some(Stream::Plain(tcp));
    };
    let remote = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    match bounded(TlsAcceptor::from(settings.clients.clone()).accept(tcp)).await {
        Ok(stream) => Some(Stream::Accepted(Box::new(stream))),
        Err(e) => {
            // Logged sparingly: strangers decide how often this happens.
            if let Some(refused) = CLIENT_REFUSALS.with(Sparse::hit) {
                tracing::info!(%remote, error = %e, refused, "refused client {remote}: TLS handshake failed (certificate or no TLS)");
            }
            None
        }
    }
}

/// A connection on the peer port: plain without `config`; with it, only
/// once the peer proved a certificate from the CA (carrying an allowed
/// name, if any are listed). A refusal is logged with the remote address.
pub async fn accept_peer(
    tcp: TcpStream,
    config: Option<&TlsSettings>,
) -> Option<(Stream, Option<PeerIdentity>)> {
    let Some(settings) = config else {
        return Some((Stream::Plain(tcp), None));
    };
    let remote = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let stream = match bounded(TlsAcceptor::from(settings.peer_server.clone()).accept(tcp)).await {
        Ok(stream) => Stream::Accepted(Box::new(stream)),
        Err(e) => {
            if let Some(refused) = PEER_REFUSALS.with(Sparse::hit) {
                tracing::warn!(%remote, error = %e, refused, "refused peer {remote}: certificate or TLS handshake failed");
            }
            return None;
        }
    };
    let names = stream.peer_names().unwrap_or_default();
    if !settings.allowed(&names) {
        if let Some(refused) = PEER_NAME_REFUSALS.with(Sparse::hit) {
            tracing::warn!(%remote, certificate = %names, refused, "refused peer {remote}: certificate name not in --peer-cert-allowed-cn");
        }
        return None;
    }
    Some((stream, Some(PeerIdentity { names, remote, bound: false })))
}

/// An outbound link to peer `to`: plain without `config`; with it, once
/// the handshake is done and the peer's certificate carries the name the
/// directory (`names`) has for `to`.
pub async fn connect_peer(
    tcp: TcpStream,
    config: Option<&TlsSettings>,
    to: NodeId,
    names: &BTreeMap<NodeId, String>,
) -> Result<Stream, String> {
    let Some(settings) = config else {
        return Ok(Stream::Plain(tcp));
    };
    let remote = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let name = TlsSettings::join_server_name();
    let connector = TlsConnector::from(settings.peer_client.clone());
    let stream = match bounded(connector.connect(name, tcp)).await {
        Ok(stream) => Stream::Connected(Box::new(stream)),
        Err(e) => return Err(format!("TLS handshake with peer {to} at {remote} failed: {e}")),
    };
    let presented = stream.peer_names().unwrap_or_default();
    if !settings.allowed(&presented) {
        return Err(format!("peer {to} at {remote}: certificate {presented} not in --peer-cert-allowed-cn"));
    }
    match names.get(&to) {
        Some(expected) if !presented.has(expected) => {
            Err(format!("peer {to} at {remote}: certificate {presented} does not name member {expected:?}"))
        }
        _ => Ok(stream),
    }
}

/// Who an inbound peer proved to be, and whether that is bound yet to the
/// member id it claims.
#[derive(Debug)]
pub struct PeerIdentity {
    names: CertNames,
    remote: String,
    /// The directory named `from`, and the certificate carries that name.
    bound: bool,
}

impl PeerIdentity {
    /// Checks the peer's claim to be member `from` against the directory
    /// (`names`: id → member name). Called on its `Hello` and on every
    /// message until the directory knows `from` (a node that just joined
    /// has an empty directory until the log or a snapshot reaches it; the
    /// peer is from the CA meanwhile). An error means: close the link.
    pub fn admit(&mut self, from: NodeId, names: &BTreeMap<NodeId, String>) -> Result<(), String> {
        if self.bound {
            return Ok(());
        }
        let mismatch = |expected: &str| {
            format!(
                "peer {} claims member {from} ({expected:?}) with certificate {}: closing",
                self.remote, self.names
            )
        };
        match names.get(&from) {
            Some(expected) if self.names.has(expected) => {
                self.bound = true;
                Ok(())
            }
            Some(expected) => Err(mismatch(expected)),
            // Unknown id: the certificate must not be another member's.
            None => match names.iter().find(|(_, name)| self.names.has(name)) {
                Some((_, other)) => Err(mismatch(other)),
                // A node that knows no member yet (it just joined, or
                // restarted before any snapshot) cannot tell; it asks
                // again on every message until it can.
                None if names.is_empty() => Ok(()),
                // Any other certificate from the CA (a client's, a
                // removed member's) claiming a number no member has.
                None => Err(format!(
                    "peer {} claims member {from}, which no member is (certificate {}): closing",
                    self.remote, self.names
                )),
            },
        }
    }
}

/// The names an X.509 certificate carries: its subject's common name and
/// its DNS subject alternative names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertNames {
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
}

impl std::fmt::Display for CertNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(CN {:?}, DNS SAN {:?})", self.common_name.as_deref().unwrap_or(""), self.dns_names)
    }
}

impl CertNames {
    /// True if `name` is the CN or one of the DNS SANs, exactly.
    pub fn has(&self, name: &str) -> bool {
        self.common_name.as_deref() == Some(name) || self.dns_names.iter().any(|n| n == name)
    }

    /// Reads the names from a DER certificate; `None` if it is not one.
    pub fn parse(der: &CertificateDer<'_>) -> Option<CertNames> {
        der_names(der.as_ref())
    }
}

/// One DER element at the front of `input`: `(tag, contents, rest)`.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in the parts read here
    }
    let (&first, mut input) = input.split_first()?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, rest) = input.split_at(count);
        input = rest;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    if input.len() < length {
        return None;
    }
    let (contents, rest) = input.split_at(length);
    Some((tag, contents, rest))
}

/// The elements of a DER sequence or set's contents, in order.
fn der_elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, contents, rest) = der_element(input)?;
        input = rest;
        Some((tag, contents))
    })
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
/// id-at-commonName, 2.5.4.3.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// id-ce-subjectAltName, 2.5.29.17.
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// `[3]` around the extensions in a TBSCertificate.
const EXTENSIONS: u8 = 0xa3;
/// `dNSName [2] IA5String` in a GeneralName.
const DNS_NAME: u8 = 0x82;

/// RFC 5280 §4.1: Certificate → TBSCertificate → (`[0]` version?, serial,
/// signature, issuer, validity, subject, ..., `[3]` extensions?): the
/// subject is the fifth element, or the sixth after a version.
fn der_names(der: &[u8]) -> Option<CertNames> {
    let (SEQUENCE, certificate, _) = der_element(der)? else { return None };
    let (SEQUENCE, tbs, _) = der_element(certificate)? else { return None };
    let fields: Vec<(u8, &[u8])> = der_elements(tbs).collect();
    let skip = usize::from(fields.first()?.0 == 0xa0);
    let (subject_tag, subject) = *fields.get(skip + 4)?;
    if subject_tag != SEQUENCE {
        return None;
    }
    let mut names = CertNames::default();
    for (_, set) in der_elements(subject).filter(|(tag, _)| *tag == SET) {
        for (_, pair) in der_elements(set).filter(|(tag, _)| *tag == SEQUENCE) {
            let mut parts = der_elements(pair);
            if let (Some((OID, OID_COMMON_NAME)), Some((_, value))) = (parts.next(), parts.next()) {
                names.common_name = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    let extensions = fields.iter().find(|(tag, _)| *tag == EXTENSIONS).map(|(_, contents)| *contents);
    if let Some((SEQUENCE, list, _)) = extensions.and_then(der_element) {
        for (_, extension) in der_elements(list).filter(|(tag, _)| *tag == SEQUENCE) {
            let parts: Vec<(u8, &[u8])> = der_elements(extension).collect();
            if parts.first() != Some(&(OID, OID_SUBJECT_ALT_NAME)) {
                continue;
            }
            let Some((OCTET_STRING, value)) = parts.last().copied() else { continue };
            if let Some((SEQUENCE, general_names, _)) = der_element(value) {
                for (tag, name) in der_elements(general_names) {
                    if tag == DNS_NAME {
                        names.dns_names.push(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_names_never_panics_on_truncated_or_garbage_input() {
        let garbage: Vec<u8> = (0..=255u8).cycle().take(600).collect();
        for end in 0..garbage.len() {
            let _ = der_names(&garbage[..end]);
        }
        assert_eq!(der_names(&[]), None);
        // Every byte of a real certificate changed to a few values, and
        // every truncation of it: an answer or `None`, never a panic.
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["raft0".to_string()]).expect("params");
        let der = params.self_signed(&key).expect("certificate").der().to_vec();
        for i in 0..der.len() {
            for value in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                let mut mutated = der.clone();
                mutated[i] = value;
                let _ = der_names(&mutated);
            }
            let _ = der_names(&der[..i]);
        }
        assert!(der_names(&der).is_some_and(|names| names.has("raft0")));
        assert_eq!(der_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn names_are_read_from_the_subject_cn_and_the_dns_sans() {
        let mut params =
            rcgen::CertificateParams::new(vec!["raft0".to_string(), "127.0.0.1".into(), "db.example".into()])
                .expect("params");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "cashe");
        params.distinguished_name.push(rcgen::DnType::CommonName, "node-zero");
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = params.self_signed(&key).expect("certificate");
        let names = CertNames::parse(certificate.der()).expect("names");
        assert_eq!(names.common_name.as_deref(), Some("node-zero"));
        assert_eq!(names.dns_names, ["raft0", "db.example"]);
        assert!(
            names.has("raft0") && names.has("node-zero") && !names.has("127.0.0.1") && !names.has("cashe")
        );
    }

    #[test]
    fn an_unknown_id_is_refused_unless_the_node_knows_no_member() {
        let directory: BTreeMap<NodeId, String> =
            [(NodeId(1), "raft0".to_string()), (NodeId(2), "raft1".to_string())].into();
        let identity = |name: &str| PeerIdentity {
            names: CertNames { common_name: Some(name.into()), dns_names: vec![] },
            remote: "127.0.0.1:1".into(),
            bound: false,
        };
        assert!(identity("raft1").admit(NodeId(2), &directory).is_ok());
        assert!(identity("raft1").admit(NodeId(1), &directory).is_err());
        assert!(identity("raft1").admit(NodeId(7), &directory).is_err());
        // A certificate naming no member (a client's, a removed member's)
        // claiming a number no member has.
        assert!(identity("client").admit(NodeId(99), &directory).is_err());
        // A node that knows no member yet admits for now, and checks again
        // on every message until it knows the number.
        let mut newcomer = identity("raft2");
        assert!(newcomer.admit(NodeId(3), &BTreeMap::new()).is_ok());
        assert!(!newcomer.bound, "not bound until the directory names member 3");
        assert!(newcomer.admit(NodeId(3), &directory).is_err(), "still unknown once members are known");
        let mut later = directory.clone();
        later.insert(NodeId(3), "raft9".into());
        assert!(newcomer.admit(NodeId(3), &later).is_err());
        later.insert(NodeId(3), "raft2".into());
        assert!(newcomer.admit(NodeId(3), &later).is_ok());
        assert!(newcomer.bound);
    }
}
