//! TLS set-up: load the operator's certificate or generate (once) and reuse a self-signed one.
//!
//! The certificate sits behind a [`CertSwap`] so that a reload (after a renewal, for example)
//! changes it for new connections without a restart; connections already open keep theirs.

use std::fs;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{bail, Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

/// A ready TLS acceptor, the same certificate set up for QUIC, and the SHA-256 fingerprint of
/// the leaf certificate.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// TLS 1.3 only (QUIC requires it) with chinwag's ALPN name, [`crate::quic::ALPN`], and the
    /// same swappable certificate.
    pub quic: Arc<quinn::crypto::rustls::QuicServerConfig>,
    /// HTTPS for the web listener: the same swappable certificate, ALPN `http/1.1`, and no
    /// request for a client certificate (a browser would ask its user to pick one).
    pub web: TlsAcceptor,
    /// Upper-case hex pairs joined by ':', the form clients pin.
    pub fingerprint: String,
    /// Where the acceptor gets its certificate; [`CertSwap::reload`] replaces it.
    pub certs: Arc<CertSwap>,
}

/// The certificate in use, replaceable while the server runs. A handshake takes a read lock
/// for the time of an `Arc` clone.
#[derive(Debug)]
pub struct CertSwap {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertSwap {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl CertSwap {
    /// Loads the certificate again (the same rules as at start) and uses it for new
    /// connections. Returns the new fingerprint; on error the old certificate stays.
    pub fn reload(&self, data_dir: &Path, cert: Option<&Path>, key: Option<&Path>, names: &[String]) -> Result<String> {
        let (certified, fingerprint) = load_certified(data_dir, cert, key, names)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        Ok(fingerprint)
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

/// Loads `cert`/`key` if given, else the generated pair in `data_dir/tls`, generating it first
/// if it does not exist yet.
pub fn load_or_generate(data_dir: &Path, cert: Option<&Path>, key: Option<&Path>, names: &[String]) -> Result<Tls> {
    let (certified, fingerprint) = load_certified(data_dir, cert, key, names)?;
    let certs = Arc::new(CertSwap { current: RwLock::new(Arc::new(certified)) });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let any_client_cert = Arc::new(AnyClientCert { provider: provider.clone() });
    let tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("configuring TLS versions")?
        .with_client_cert_verifier(any_client_cert.clone())
        .with_cert_resolver(certs.clone());
    // QUIC asks for a client certificate the same way: one presented there is a CertFP too.
    let mut quic = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("configuring TLS versions")?
        .with_client_cert_verifier(any_client_cert)
        .with_cert_resolver(certs.clone());
    quic.alpn_protocols = vec![crate::quic::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(quic).context("configuring TLS for QUIC")?;
    let mut web = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("configuring TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    web.alpn_protocols = vec![b"http/1.1".to_vec()];
    let web = TlsAcceptor::from(Arc::new(web));
    Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(tls)), quic: Arc::new(quic), web, fingerprint, certs })
}

fn load_certified(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
    names: &[String],
) -> Result<(CertifiedKey, String)> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        (None, None) => {
            let dir = data_dir.join("tls");
            let pair = (dir.join("cert.pem"), dir.join("key.pem"));
            // The key is written first and the certificate last, each atomically: a key without
            // a certificate is a generation a crash cut short. That certificate never reached
            // the disk, so no client can have seen or pinned it, and a new pair is made.
            let interrupted = !pair.0.exists() && pair.1.exists();
            if interrupted {
                tracing::warn!(key = %pair.1.display(), "the last certificate generation was cut short; generating again");
            }
            if !pair.0.exists() {
                generate(&dir, &pair.0, &pair.1, names)?;
            } else {
                crate::files::private_dir(&dir)?;
                for path in [&pair.0, &pair.1] {
                    crate::files::tighten(path, crate::files::FILE_MODE)?;
                }
            }
            return load_pair(&pair.0, &pair.1).map_err(|e| damaged_generated(e, &pair.0, &pair.1));
        }
        _ => bail!("--tls-cert and --tls-key must be given together"),
    };
    load_pair(&cert_path, &key_path)
}

/// What to do about a generated pair that does not load (an older chinwag wrote it without
/// syncing, and a power loss left it empty or cut): its fingerprint may be pinned by clients,
/// so it is not silently replaced; the operator decides.
fn damaged_generated(error: anyhow::Error, cert: &Path, key: &Path) -> anyhow::Error {
    error.context(format!(
        "the self-signed certificate chinwag generated ({}, {}) is empty or damaged (a power loss while it was \
         written?). Restore both files from a backup; or delete both and start again to generate a new pair, \
         whose new fingerprint clients that pinned the old one must accept (chinwag chat --accept-changed-cert \
         NEW-FINGERPRINT)",
        cert.display(),
        key.display()
    ))
}

fn load_pair(cert_path: &Path, key_path: &Path) -> Result<(CertifiedKey, String)> {
    let certs = read_certs(cert_path)?;
    let key = read_key(key_path)?;
    let fingerprint = fingerprint(&certs[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // A throw-away config checks that the key fits the certificate, with rustls's own test.
    rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("configuring TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key.clone_key())
        .with_context(|| format!("the key in {} does not fit the certificate", key_path.display()))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .with_context(|| format!("the key in {} is of an unsupported type", key_path.display()))?;
    Ok((CertifiedKey::new(certs, signer), fingerprint))
}

/// Asks every TLS and QUIC client for a certificate and takes any, self-signed included: a client
/// certificate here is an identity for SASL EXTERNAL (CertFP), registered by its fingerprint,
/// not a claim a CA vouches for. Only the handshake signature is checked (the client holds the
/// certificate's key); a client without a certificate connects as before.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A client certificate's CertFP: SHA-256 of the DER certificate.
pub fn certfp(cert: &CertificateDer<'_>) -> [u8; 32] {
    Sha256::digest(cert.as_ref()).into()
}

/// SHA-256 of the DER certificate as `AB:CD:...`.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Generates a pair into `dir` (0700): the key first, then the certificate, each written
/// atomically (`files.rs`), so that a crash leaves no pair, or a key alone (made again at the
/// next start), or both whole.
fn generate(dir: &Path, cert_path: &Path, key_path: &Path, names: &[String]) -> Result<()> {
    crate::files::private_dir(dir)?;
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    sans.extend(names.iter().cloned());
    sans.dedup();
    let certified = rcgen::generate_simple_self_signed(sans).context("generating a self-signed certificate")?;
    crate::files::write_atomic(key_path, certified.key_pair.serialize_pem().as_bytes())?;
    crate::files::write_atomic(cert_path, certified.cert.pem().as_bytes())?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok(())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = fs::read(path).with_context(|| format!("reading TLS certificate {}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = fs::read(path).with_context(|| format!("reading TLS key {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("parsing TLS key {}", path.display()))?
        .with_context(|| format!("{} holds no PEM private key", path.display()))
}
