//! Client certificates as logins (CertFP, like Ergo's): `NickServ CERT ADD|DEL|LIST` registers
//! SHA-256 fingerprints to the logged-in account, and SASL EXTERNAL logs a TLS connection in to
//! the account its certificate's fingerprint is registered to. The edge computes the
//! fingerprint ([`crate::ConnInfo::certfp`]); storage keeps at most one owner per fingerprint
//! and [`MAX_CERTS_PER_ACCOUNT`] per account.

use chinwag_proto::casefold;

use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::{Pending, Server};
use crate::store::{CertAnswer, CertRequest, Failure, Request};

/// Client certificates one account may register; one more is refused with a notice.
pub const MAX_CERTS_PER_ACCOUNT: usize = 16;
/// Hex digits of a SHA-256 fingerprint.
const FINGERPRINT_HEX: usize = 64;

/// A fingerprint as users write it (`AB:CD:…`, any case, colons optional) in the stored form,
/// 64 lower-case hex digits; `None` if it is not one.
pub(crate) fn normalize_fingerprint(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|&c| c != ':').map(|c| c.to_ascii_lowercase()).collect();
    (hex.len() == FINGERPRINT_HEX && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

impl Server {
    /// `NickServ CERT <sub> [fingerprint]`.
    pub(crate) fn nickserv_cert(&mut self, sub: &str, arg: Option<&str>, account: Option<String>) {
        let conn = self.cur_conn();
        let Some(account) = account else {
            self.nickserv_notice("Log in first: /msg NickServ IDENTIFY <password>");
            return;
        };
        let own = self.clients.get(&conn).and_then(|c| c.certfp());
        let fingerprint = match arg {
            Some(text) => normalize_fingerprint(text),
            None => own.clone(),
        };
        let request = match (sub.to_ascii_uppercase().as_str(), fingerprint) {
            ("LIST", _) => CertRequest::List { account },
            // Only the certificate this connection presents: a fingerprint typed in could be
            // someone else's, whom EXTERNAL would then log in to this account.
            ("ADD", Some(fingerprint)) if own.as_ref() != Some(&fingerprint) => {
                self.nickserv_notice(
                    "You can add only the certificate you are connected with: connect over TLS or QUIC with it and send CERT ADD.",
                );
                return;
            }
            ("ADD", Some(fingerprint)) => CertRequest::Add { account, fingerprint, max: MAX_CERTS_PER_ACCOUNT },
            ("DEL", Some(fingerprint)) if arg.is_some() => CertRequest::Remove { account, fingerprint },
            ("ADD", None) if arg.is_none() => {
                self.nickserv_notice(
                    "You presented no client certificate; give its SHA-256 fingerprint: CERT ADD <fingerprint>",
                );
                return;
            }
            ("ADD" | "DEL", _) if arg.is_some() => {
                self.nickserv_notice("That is not a SHA-256 fingerprint (64 hex digits, colons allowed).");
                return;
            }
            _ => {
                self.nickserv_notice("Usage: CERT ADD [fingerprint] | CERT DEL <fingerprint> | CERT LIST");
                return;
            }
        };
        let label = self.take_label();
        self.request(Request::Certs(request), Pending::Cert { conn, label });
    }

    pub(crate) fn cert_result(&mut self, result: Result<CertAnswer, Failure>) {
        let text = match result {
            Ok(CertAnswer::Added) => "Certificate added: SASL EXTERNAL with it logs you in.".to_owned(),
            Ok(CertAnswer::AlreadyThere) => "That certificate is already on your account.".to_owned(),
            Ok(CertAnswer::Taken) => "That certificate is registered to another account.".to_owned(),
            Ok(CertAnswer::Full) => {
                format!("Your account has {MAX_CERTS_PER_ACCOUNT} certificates already; remove one first (CERT DEL).")
            }
            Ok(CertAnswer::Removed(true)) => "Certificate removed.".to_owned(),
            Ok(CertAnswer::Removed(false)) => "That certificate is not on your account.".to_owned(),
            Ok(CertAnswer::List(list)) => {
                if list.is_empty() {
                    self.nickserv_notice("Your account has no client certificates.");
                }
                for fp in list {
                    self.nickserv_notice(&format!("Certificate: {fp}"));
                }
                return;
            }
            Err(Failure::Unavailable(why)) => why,
            Err(_) => "Your account no longer exists.".to_owned(),
        };
        self.nickserv_notice(&text);
    }

    /// SASL EXTERNAL's message arrived: ask who owns the connection's certificate.
    pub(crate) fn external_start(&mut self, authzid: Option<String>) {
        let conn = self.cur_conn();
        let Some(client) = self.clients.get(&conn) else { return };
        let Some(fingerprint) = client.certfp() else {
            self.numeric(ERR_SASLFAIL, ["SASL authentication failed: no client certificate was presented"]);
            return;
        };
        if client.login_pending {
            self.numeric(ERR_SASLFAIL, ["SASL authentication failed: a login is already being checked"]);
            return;
        }
        if let Some(client) = self.clients.get_mut(&conn) {
            client.login_pending = true;
        }
        let label = self.take_label();
        self.request(Request::CertOwner { fingerprint }, Pending::External { conn, authzid, label });
    }

    pub(crate) fn external_result(&mut self, conn: ConnId, authzid: Option<String>, result: Result<String, Failure>) {
        let Some(client) = self.clients.get_mut(&conn) else { return };
        client.login_pending = false;
        let ip = client.info.ip;
        match result {
            Ok(account) if authzid.as_deref().is_none_or(|a| casefold(a) == casefold(&account)) => {
                tracing::info!(target: "audit", %conn, %ip, account = %account, via = "external", "login succeeded");
                self.log_in(conn, &account);
                self.numeric(RPL_SASLSUCCESS, ["SASL authentication successful"]);
            }
            Ok(_) => {
                self.numeric(ERR_SASLFAIL, ["SASL authentication failed: your certificate is for another account"])
            }
            Err(Failure::Unavailable(why)) => {
                self.numeric(ERR_SASLFAIL, [format!("SASL authentication failed: {why}")])
            }
            Err(_) => {
                tracing::info!(target: "audit", %conn, %ip, via = "external", "login failed: unknown certificate");
                let text =
                    "SASL authentication failed: your certificate is not registered to an account (NickServ CERT ADD)";
                self.numeric(ERR_SASLFAIL, [text]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_normalised() {
        let hex = "ab".repeat(32);
        assert_eq!(normalize_fingerprint(&format!("{}AB", "AB:".repeat(31))), Some(hex.clone()));
        assert_eq!(normalize_fingerprint(&hex.to_uppercase()), Some(hex));
        assert_eq!(normalize_fingerprint("abcd"), None);
        assert_eq!(normalize_fingerprint(&"zz".repeat(32)), None);
    }
}
