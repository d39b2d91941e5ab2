//! How the client decides to trust a server's certificate: signed by a CA in the Mozilla root
//! store (`webpki-roots`, so the answer is the same on every machine), or exactly the one
//! pinned for this server. Anything else fails the handshake, and the fingerprint that was
//! presented is kept so the caller can tell "never met" from "changed" and say so.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// Why a certificate was accepted; shown next to the lock in the status bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// A certificate authority vouches for the name.
    Ca,
    /// It is the certificate pinned in the known-servers file.
    Pinned,
}

/// What the verifier saw during one handshake.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// SHA-256 of the server's leaf certificate, `AB:CD:…`.
    pub fingerprint: Option<String>,
    /// Set only if the certificate was accepted.
    pub trust: Option<Trust>,
}

/// SHA-256 of a DER certificate as upper-case hex pairs joined by `:` (what `chinwag serve`
/// prints).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The rustls client configuration for one connection attempt, and the slot its verifier
/// fills in.
pub fn client_config(pinned: Option<String>) -> Result<(rustls::ClientConfig, Arc<Mutex<Seen>>), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .map_err(|e| rustls::Error::General(format!("building the CA verifier: {e}")))?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = PinOrCa { webpki, pinned, seen: Arc::clone(&seen), provider: Arc::clone(&provider) };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((config, seen))
}

/// Accepts a CA-signed certificate for the name, or the pinned one.
#[derive(Debug)]
struct PinOrCa {
    /// The standard WebPKI check (chain to a root, name, validity dates).
    webpki: Arc<WebPkiServerVerifier>,
    /// The fingerprint from the known-servers file, if the server is known.
    pinned: Option<String>,
    /// Where the outcome goes, for the caller.
    seen: Arc<Mutex<Seen>>,
    /// Signature algorithms for the handshake signatures.
    provider: Arc<CryptoProvider>,
}

impl PinOrCa {
    fn record(&self, fingerprint: String, trust: Option<Trust>) {
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.fingerprint = Some(fingerprint);
        seen.trust = trust;
    }
}

impl ServerCertVerifier for PinOrCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        if self.pinned.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(&presented)) {
            self.record(presented, Some(Trust::Pinned));
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(ok) => {
                self.record(presented, Some(Trust::Ca));
                Ok(ok)
            }
            Err(e) => {
                self.record(presented, None);
                Err(e)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
