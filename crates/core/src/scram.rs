//! SASL SCRAM-SHA-256 (RFC 5802, RFC 7677): the server's credentials and the message
//! arithmetic, without I/O. The nonce comes from the edge with the credentials (the core has no
//! randomness); the exchange itself runs in `handlers/account.rs`.
//!
//! Credentials are derived once, at registration or a password change (or at the first password
//! login of an account registered before SCRAM), and stored as RFC 5803 text beside the Argon2id
//! hash: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64. The password itself
//! never reaches the server during a SCRAM login. Passwords are taken as their UTF-8 bytes, with
//! no SASLprep: it leaves printable ASCII as it is, and a client that normalises a non-ASCII
//! password differently fails SCRAM and falls back to PLAIN.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// PBKDF2 iterations for new credentials: 4096, the minimum of RFC 7677 and what PostgreSQL and
/// IRC services commonly use. A client repeats the PBKDF2 at every login (few cache it), and the
/// Argon2id hash stays the primary verifier; what this count protects is a stolen database,
/// where each guess against a SCRAM verifier costs one PBKDF2. The count is stored with each
/// account's credentials, so raising it later applies to new passwords without breaking old ones.
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Salt length in bytes for new credentials.
pub const SCRAM_SALT_LEN: usize = 16;
/// Fewest iterations accepted from storage: below RFC 7677's minimum is a corrupt record.
const MIN_ITERATIONS: u32 = 4096;
/// Longest client nonce accepted (printable characters); real clients send 24 to 32.
const MAX_NONCE_LEN: usize = 256;

type HmacSha256 = Hmac<Sha256>;

/// What the server keeps for SCRAM-SHA-256: enough to check a client's proof and prove itself,
/// never enough to log in as the client.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentials").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

impl ScramCredentials {
    /// Derives credentials from a password (PBKDF2-HMAC-SHA-256, `iterations` rounds): slow on
    /// purpose, for the edge's blocking pool, never the hub.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> ScramCredentials {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        ScramCredentials {
            salt: salt.to_vec(),
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// RFC 5803 text: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn to_stored(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// Parses [`ScramCredentials::to_stored`]'s text; `None` if it is not that.
    pub fn from_stored(text: &str) -> Option<ScramCredentials> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations: u32 = iterations.parse().ok()?;
        let salt = B64.decode(salt).ok()?;
        if iterations < MIN_ITERATIONS || salt.is_empty() {
            return None;
        }
        Some(ScramCredentials {
            salt,
            iterations,
            stored_key: B64.decode(stored).ok()?.try_into().ok()?,
            server_key: B64.decode(server).ok()?.try_into().ok()?,
        })
    }
}

/// `Hi(password, salt, i)` of RFC 5802: PBKDF2-HMAC-SHA-256 with a 32-byte output.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// `HMAC(key, data)` with SHA-256.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The client's first message, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientFirst {
    /// `n,,` or `y,,` (or with `a=` the authzid): echoed back in the final message's `c=`.
    pub gs2_header: String,
    /// The user name (authentication identity), `=2C`/`=3D` decoded.
    pub user: String,
    pub nonce: String,
    /// The message without its GS2 header, part of the AuthMessage.
    pub bare: String,
}

/// Why a SCRAM message was refused, as told to the client.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScramError {
    Malformed,
    /// `p=`: channel binding, which we do not offer (no `-PLUS` mechanism).
    ChannelBinding,
    /// An authorization identity other than the authentication identity.
    OtherIdentity,
}

/// Parses `gs2-header client-first-message-bare` (RFC 5802 §7).
pub(crate) fn parse_client_first(text: &str) -> Result<ClientFirst, ScramError> {
    let (flag, rest) = text.split_once(',').ok_or(ScramError::Malformed)?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed),
    }
    let (authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed)?;
    let gs2_header = format!("{flag},{authzid},");
    let mut attrs = bare.split(',');
    let user = attrs.next().and_then(|a| a.strip_prefix("n=")).ok_or(ScramError::Malformed)?;
    let user = decode_name(user).ok_or(ScramError::Malformed)?;
    let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or(ScramError::Malformed)?;
    if user.is_empty() || !valid_nonce(nonce) {
        return Err(ScramError::Malformed);
    }
    // Any further attribute is an extension; a mandatory one (`m=`) we cannot honour.
    if attrs.any(|a| a.starts_with("m=") || !a.contains('=')) {
        return Err(ScramError::Malformed);
    }
    if !authzid.is_empty() {
        let authz = authzid.strip_prefix("a=").and_then(decode_name).ok_or(ScramError::Malformed)?;
        if chinwag_proto::casefold(&authz) != chinwag_proto::casefold(&user) {
            return Err(ScramError::OtherIdentity);
        }
    }
    Ok(ClientFirst { gs2_header, user, nonce: nonce.to_owned(), bare: bare.to_owned() })
}

/// The server's first message: the combined nonce, the salt, the iteration count.
pub(crate) fn server_first(client_nonce: &str, server_nonce: &str, creds: &ScramCredentials) -> String {
    format!("r={client_nonce}{server_nonce},s={},i={}", B64.encode(&creds.salt), creds.iterations)
}

/// Checks the client's final message against the exchange so far. `Ok` carries the server's
/// final message (`v=<ServerSignature>`); `Err(None)` a message that does not parse or does not
/// belong to this exchange, `Err(Some(()))` a wrong proof (a wrong password).
pub(crate) fn verify_client_final(
    text: &str,
    first: &ClientFirst,
    server_first: &str,
    nonce: &str,
    creds: &ScramCredentials,
) -> Result<String, Option<()>> {
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or(None)?;
    let mut attrs = without_proof.split(',');
    let binding = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or(None)?;
    let their_nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or(None)?;
    if B64.decode(binding).ok().as_deref() != Some(first.gs2_header.as_bytes()) || their_nonce != nonce {
        return Err(None);
    }
    let proof: [u8; 32] = B64.decode(proof).ok().and_then(|p| p.try_into().ok()).ok_or(None)?;
    let auth_message = format!("{},{server_first},{without_proof}", first.bare);
    let signature = hmac(&creds.stored_key, auth_message.as_bytes());
    let mut client_key = [0u8; 32];
    for (k, (p, s)) in client_key.iter_mut().zip(proof.iter().zip(signature.iter())) {
        *k = p ^ s;
    }
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    if !bool::from(stored_key.ct_eq(&creds.stored_key)) {
        return Err(Some(()));
    }
    let server_signature = hmac(&creds.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_signature)))
}

/// `saslname` of RFC 5802: `=2C` is ',' and `=3D` is '='; any other '=' is malformed.
fn decode_name(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Printable ASCII except ',' (RFC 5802 `printable`), bounded.
fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.len() <= MAX_NONCE_LEN && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SCRAM-SHA-256 example exchange of RFC 7677 §3.
    #[test]
    fn rfc_7677_example() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let creds = ScramCredentials::derive("pencil", &salt, 4096);
        let first = parse_client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO").expect("client-first");
        assert_eq!(first.gs2_header, "n,,");
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sf = server_first(&first.nonce, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &creds);
        assert_eq!(sf, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        let cf = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let v = verify_client_final(cf, &first, &sf, nonce, &creds).expect("the RFC's proof");
        assert_eq!(v, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        let wrong = ScramCredentials::derive("pencils", &salt, 4096);
        assert_eq!(verify_client_final(cf, &first, &sf, nonce, &wrong), Err(Some(())));
        let stored = ScramCredentials::from_stored(&creds.to_stored()).expect("round trip");
        assert_eq!(stored, creds);
    }

    #[test]
    fn malformed_first_messages() {
        assert_eq!(parse_client_first("p=tls-unique,,n=a,r=x"), Err(ScramError::ChannelBinding));
        assert_eq!(parse_client_first("n,a=bob,n=alice,r=x"), Err(ScramError::OtherIdentity));
        assert_eq!(parse_client_first("n,,n=a,r=x,m=ext"), Err(ScramError::Malformed));
        assert_eq!(parse_client_first("n,,n=a=41,r=x"), Err(ScramError::Malformed));
        assert_eq!(parse_client_first("n,,n=a,r=x y"), Err(ScramError::Malformed));
        assert_eq!(parse_client_first("n,,r=x"), Err(ScramError::Malformed));
        assert_eq!(parse_client_first("n,,n=a=2Cb,r=x").map(|f| f.user), Ok("a,b".to_owned()));
        assert!(ScramCredentials::from_stored("SCRAM-SHA-256$1:c2FsdA==$AA==:AA==").is_none());
    }
}
