//! The client side of SASL SCRAM-SHA-256 (RFC 5802, RFC 7677), without I/O: the messages of
//! one exchange, and the check that the server knows the credentials too.
//!
//! The password never leaves the client: it proves knowledge of it with an HMAC over the whole
//! exchange, and the server must answer with its own signature (`v=`), which only someone
//! holding the account's SCRAM credentials can compute. A server that cannot is refused, even
//! if it then says the login worked. No channel binding (`n,,`): the TLS certificate is checked
//! by the transport. Passwords are taken as their UTF-8 bytes, without SASLprep, as chinwag's
//! server does (printable ASCII is the same either way).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Fewest PBKDF2 iterations accepted from a server: RFC 7677's minimum.
pub const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations computed for a server: the client runs them on its own task, so a
/// server may not ask for a minute of work (a hundred thousand take a fraction of a second).
pub const MAX_ITERATIONS: u32 = 100_000;

type HmacSha256 = Hmac<Sha256>;

/// Why an exchange was abandoned. Shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("the server's SCRAM message is malformed ({0})")]
    Malformed(&'static str),
    #[error("the server's SCRAM nonce does not extend ours")]
    Nonce,
    #[error("the server asks for {0} PBKDF2 iterations (accepted: {MIN_ITERATIONS} to {MAX_ITERATIONS})")]
    Iterations(u32),
    #[error("the server refused the login: {0}")]
    Refused(String),
    #[error(
        "the server could not prove that it knows your password (wrong SCRAM server signature): \
         it may not be the server it claims to be"
    )]
    ServerSignature,
    #[error("the server's SCRAM message came out of order")]
    OutOfOrder,
}

/// Where the exchange stands.
enum Step {
    /// The client-first message went out.
    First {
        bare: String,
    },
    /// The proof went out; the server's signature is what a server with the credentials sends.
    Final {
        server_signature: [u8; 32],
    },
    /// The server proved itself.
    Verified,
    Failed,
}

/// One SCRAM-SHA-256 exchange, from the client's first message to the server's signature.
pub struct ScramClient {
    password: String,
    nonce: String,
    step: Step,
    first: String,
}

impl std::fmt::Debug for ScramClient {
    // The password stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient").field("verified", &self.verified()).finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Starts an exchange for `account` with a fresh `nonce` (printable ASCII without ',',
    /// unpredictable: the caller draws it from a CSPRNG).
    pub fn new(account: &str, password: &str, nonce: &str) -> ScramClient {
        let bare = format!("n={},r={nonce}", encode_name(account));
        ScramClient {
            password: password.to_owned(),
            nonce: nonce.to_owned(),
            first: format!("n,,{bare}"),
            step: Step::First { bare },
        }
    }

    /// The client-first message.
    pub fn client_first(&self) -> &str {
        &self.first
    }

    /// Whether the server has proved that it knows the credentials.
    pub fn verified(&self) -> bool {
        matches!(self.step, Step::Verified)
    }

    /// Whether the proof has gone out: a failure after it is a verdict on the password, one
    /// before it is not (the server may have no SCRAM credentials for the account).
    pub fn proof_sent(&self) -> bool {
        matches!(self.step, Step::Final { .. } | Step::Verified)
    }

    /// Takes the server-first message (`r=…,s=…,i=…`) and returns the client-final message
    /// with the proof.
    pub fn server_first(&mut self, message: &str) -> Result<String, ScramError> {
        let Step::First { bare } = std::mem::replace(&mut self.step, Step::Failed) else {
            return Err(ScramError::OutOfOrder);
        };
        let mut attrs = message.split(',');
        let mut next = |key: &'static str| {
            attrs.next().and_then(|a| a.strip_prefix(key)).ok_or(ScramError::Malformed("missing attribute"))
        };
        if message.starts_with("m=") {
            return Err(ScramError::Malformed("a mandatory extension"));
        }
        if let Some(e) = message.strip_prefix("e=") {
            return Err(ScramError::Refused(e.to_owned()));
        }
        let nonce = next("r=")?;
        let salt = B64.decode(next("s=")?).map_err(|_| ScramError::Malformed("salt"))?;
        let iterations: u32 = next("i=")?.parse().map_err(|_| ScramError::Malformed("iteration count"))?;
        if !nonce.starts_with(self.nonce.as_str()) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Nonce);
        }
        if salt.is_empty() {
            return Err(ScramError::Malformed("empty salt"));
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        // `biws` is base64("n,,"): no channel binding, no authorization identity.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{bare},{message},{without_proof}");
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(client_signature.iter()).map(|(k, s)| k ^ s).collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        self.step = Step::Final { server_signature };
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Takes the server-final message (`v=…` or `e=…`): `Ok` only if the server's signature
    /// is the one the credentials give.
    pub fn server_final(&mut self, message: &str) -> Result<(), ScramError> {
        let Step::Final { server_signature } = std::mem::replace(&mut self.step, Step::Failed) else {
            return Err(ScramError::OutOfOrder);
        };
        if let Some(e) = message.strip_prefix("e=") {
            return Err(ScramError::Refused(e.split(',').next().unwrap_or(e).to_owned()));
        }
        let v = message.split(',').next().and_then(|a| a.strip_prefix("v=")).ok_or(ScramError::ServerSignature)?;
        let theirs = B64.decode(v).map_err(|_| ScramError::ServerSignature)?;
        if theirs.len() != server_signature.len() || !bool::from(theirs.ct_eq(&server_signature)) {
            return Err(ScramError::ServerSignature);
        }
        self.step = Step::Verified;
        Ok(())
    }
}

/// A fresh client nonce: 18 random bytes as base64 (24 printable characters, no ',').
pub fn new_nonce() -> String {
    B64.encode(rand::random::<[u8; 18]>())
}

/// `saslname` of RFC 5802: ',' is `=2C` and '=' is `=3D`.
fn encode_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length, so this cannot fail.
    let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) else { return [0; 32] };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    /// The SCRAM-SHA-256 example exchange of RFC 7677 §3, from the client's side.
    #[test]
    fn rfc_7677_example() {
        let mut client = ScramClient::new("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(client.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = client.server_first(SERVER_FIRST).expect("server-first");
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(client.proof_sent() && !client.verified());
        client.server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").expect("the RFC's signature");
        assert!(client.verified());
    }

    #[test]
    fn a_forged_server_signature_is_refused() {
        // A server that never knew the password: it can only guess the signature.
        let forged = format!("v={}", B64.encode([7u8; 32]));
        for reply in [forged.as_str(), "v=", "v=bm90IGJhc2U2NA", "x=whatever", "", "e=invalid-proof"] {
            let mut client = ScramClient::new("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
            client.server_first(SERVER_FIRST).expect("server-first");
            assert!(client.server_final(reply).is_err(), "{reply:?} was accepted");
            assert!(!client.verified());
        }
        // A server holding credentials for another password fails the same way.
        let mut client = ScramClient::new("user", "pencils", "rOprNGfwEbeRWgbNEkqO");
        client.server_first(SERVER_FIRST).expect("server-first");
        let err = client.server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").expect_err("wrong password");
        assert_eq!(err, ScramError::ServerSignature);
    }

    #[test]
    fn odd_server_first_messages_are_refused() {
        let refuse = |msg: &str| {
            let mut client = ScramClient::new("a,b=c", "pw", "abc");
            assert_eq!(client.client_first(), "n,,n=a=2Cb=3Dc,r=abc");
            client.server_first(msg).expect_err(msg)
        };
        assert_eq!(refuse("r=xyz123,s=c2FsdA==,i=4096"), ScramError::Nonce);
        assert_eq!(refuse("r=abc,s=c2FsdA==,i=4096"), ScramError::Nonce);
        assert_eq!(refuse("r=abcdef,s=c2FsdA==,i=1"), ScramError::Iterations(1));
        assert_eq!(refuse("r=abcdef,s=c2FsdA==,i=4000000000"), ScramError::Iterations(4_000_000_000));
        assert!(matches!(refuse("m=ext,r=abcdef,s=c2FsdA==,i=4096"), ScramError::Malformed(_)));
        assert!(matches!(refuse("r=abcdef,i=4096"), ScramError::Malformed(_)));
        assert_eq!(refuse("e=unknown-user"), ScramError::Refused("unknown-user".into()));
        let mut client = ScramClient::new("a", "pw", "abc");
        assert_eq!(client.server_final("v=AAAA"), Err(ScramError::OutOfOrder));
    }
}
