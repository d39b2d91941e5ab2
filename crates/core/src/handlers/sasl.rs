//! `AUTHENTICATE`: the SASL exchange and its mechanisms, PLAIN and SCRAM-SHA-256.
//!
//! PLAIN hands the password to the login path of `account.rs`. SCRAM-SHA-256 (RFC 5802/7677)
//! never sees the password: the client's first message names the account, the edge answers
//! with its stored credentials and a server nonce ([`Request::ScramCredentials`]), and the
//! client's proof is checked here (`scram.rs`). Both count in the login throttle the same way:
//! an attempt is reserved when the exchange asks storage (for SCRAM, at the client's first
//! message, the ticket then riding in the exchange's state) and settled when the answer is
//! known: a wrong proof is a failure, an exchange abandoned before its proof is not.
//! After the server's final message (`v=…`) the client answers `+` and only then is it logged in.

use base64::Engine;
use chinwag_proto::{casefold, Message};

use super::account::{LoginVia, INSECURE};
use crate::ids::ConnId;
use crate::numeric::*;
use crate::scram::{self, ClientFirst, ScramCredentials, ScramError};
use crate::server::{Pending, Server};
use crate::store::{Failure, Request, ScramLookup};
use crate::text::seconds;
use crate::throttle::{Outcome, Ticket};

/// SASL sends base64 in chunks of this size; a shorter chunk ends the message.
const SASL_CHUNK: usize = 400;
/// No client message of our mechanisms needs more than this much base64: a client that goes on
/// sending full chunks past it is refused (904) instead of filling memory.
const SASL_MAX_LEN: usize = 4 * SASL_CHUNK;
/// The mechanisms, as `RPL_SASLMECHS` and the `sasl` capability list them.
pub(crate) const MECHANISMS: &str = "PLAIN,SCRAM-SHA-256";
/// The mechanisms on a TLS connection, where a client certificate can log in.
pub(crate) const MECHANISMS_TLS: &str = "PLAIN,SCRAM-SHA-256,EXTERNAL";

/// An AUTHENTICATE exchange in progress.
#[derive(Debug)]
pub(crate) struct SaslState {
    /// Base64 received of the current client message (chunks of [`SASL_CHUNK`]).
    pub buffer: String,
    pub step: SaslStep,
}

/// Where an exchange stands: which client message comes next.
#[derive(Debug)]
pub(crate) enum SaslStep {
    /// PLAIN's only message.
    Plain,
    /// EXTERNAL's only message: an authorization identity, or empty.
    External,
    /// SCRAM's client-first message.
    ScramFirst,
    /// SCRAM's client-final message (the proof), after our server-first.
    ScramFinal(Box<ScramExchange>),
    /// The client's empty answer to our server-final message; then it is logged in.
    ScramAck { account: String },
}

/// What a SCRAM exchange remembers between the server-first and client-final messages.
#[derive(Debug)]
pub(crate) struct ScramExchange {
    first: ClientFirst,
    server_first: String,
    /// Client nonce followed by server nonce.
    nonce: String,
    credentials: ScramCredentials,
    account: String,
    /// The throttle's reservation, settled by the proof.
    ticket: Ticket,
}

impl Server {
    pub(crate) fn handle_authenticate(&mut self, msg: &Message) {
        let Some(data) = msg.params.first() else {
            self.need_more_params("AUTHENTICATE");
            return;
        };
        let conn = self.cur_conn();
        let insecure = self.insecure(conn);
        let Some(client) = self.clients.get_mut(&conn) else { return };
        if client.account.is_some() {
            self.numeric(ERR_SASLALREADY, ["You have already authenticated using SASL"]);
            return;
        }
        if data == "*" {
            self.end_sasl(conn);
            self.numeric(ERR_SASLABORTED, ["SASL authentication aborted"]);
            return;
        }
        let Some(state) = client.existing_extra_mut().and_then(|e| e.sasl.as_mut()) else {
            let step = if data.eq_ignore_ascii_case("PLAIN") {
                SaslStep::Plain
            } else if data.eq_ignore_ascii_case("SCRAM-SHA-256") {
                SaslStep::ScramFirst
            } else if data.eq_ignore_ascii_case("EXTERNAL") && client.info.tls {
                if client.certfp().is_none() {
                    self.sasl_fail("no client certificate was presented");
                    return;
                }
                SaslStep::External
            } else {
                let mechs = if client.info.tls { MECHANISMS_TLS } else { MECHANISMS };
                self.numeric(RPL_SASLMECHS, [mechs, "are available SASL mechanisms"]);
                self.numeric(ERR_SASLFAIL, ["SASL authentication failed: unknown mechanism"]);
                return;
            };
            // SCRAM sends no password, but a recording of its exchange can be guessed at offline.
            if insecure {
                self.numeric(ERR_SASLFAIL, [format!("SASL authentication failed: {INSECURE}")]);
                return;
            }
            client.extra_mut().sasl = Some(SaslState { buffer: String::new(), step });
            self.send_msg(conn, Message::new("AUTHENTICATE").with_param("+"));
            return;
        };
        // One chunk longer than a chunk may be is 905; a payload that never ends (full chunks
        // past SASL_MAX_LEN) is a failed authentication, 904, as Ergo answers both.
        if data.len() > SASL_CHUNK {
            self.end_sasl(conn);
            self.numeric(ERR_SASLTOOLONG, ["SASL message too long"]);
            return;
        }
        if data != "+" {
            state.buffer.push_str(data);
        }
        if state.buffer.len() > SASL_MAX_LEN {
            self.end_sasl(conn);
            self.numeric(ERR_SASLFAIL, ["SASL authentication failed: payload too long"]);
            return;
        }
        if data.len() == SASL_CHUNK {
            return;
        }
        let payload = std::mem::take(&mut state.buffer);
        let Some(state) = client.existing_extra_mut().and_then(|e| e.sasl.take()) else { return };
        client.tidy();
        let decoded = base64::engine::general_purpose::STANDARD.decode(&payload).ok();
        match state.step {
            SaslStep::Plain => match decoded.as_deref().and_then(decode_plain) {
                Some((account, password)) => self.attempt_login(&account, password, LoginVia::Sasl),
                None => self.sasl_fail("malformed PLAIN message"),
            },
            SaslStep::External => match decoded.map(String::from_utf8) {
                Some(Ok(authzid)) => self.external_start((!authzid.is_empty()).then_some(authzid)),
                _ => self.sasl_fail("malformed EXTERNAL message"),
            },
            SaslStep::ScramFirst => {
                let first = decoded.and_then(|d| String::from_utf8(d).ok()).ok_or(ScramError::Malformed);
                match first.and_then(|text| scram::parse_client_first(&text)) {
                    Ok(first) => self.scram_start(first),
                    Err(ScramError::Malformed) => self.sasl_fail("malformed SCRAM message"),
                    Err(ScramError::ChannelBinding) => self.sasl_fail("channel binding is not supported"),
                    Err(ScramError::OtherIdentity) => self.sasl_fail("you may only log in as yourself"),
                }
            }
            SaslStep::ScramFinal(exchange) => self.scram_final(conn, decoded, *exchange),
            SaslStep::ScramAck { account } => {
                if payload.is_empty() {
                    self.log_in(conn, &account);
                    self.numeric(RPL_SASLSUCCESS, ["SASL authentication successful"]);
                } else {
                    self.sasl_fail("expected an empty response");
                }
            }
        }
    }

    fn sasl_fail(&mut self, why: &str) {
        self.numeric(ERR_SASLFAIL, [format!("SASL authentication failed: {why}")]);
    }

    /// Forgets `conn`'s exchange; a SCRAM reservation still open is released (no proof was
    /// checked, so no guess was made). Also called when the client goes.
    pub(crate) fn end_sasl(&mut self, conn: ConnId) {
        let Some(client) = self.clients.get_mut(&conn) else { return };
        let Some(state) = client.existing_extra_mut().and_then(|e| e.sasl.take()) else { return };
        client.tidy();
        if let SaslStep::ScramFinal(exchange) = state.step {
            client.login_pending = false;
            self.throttle.settle(exchange.ticket, Outcome::Unknown, self.now.mono, &self.cfg.limits);
        }
    }

    /// The client-first message arrived: reserve an attempt and ask for the credentials.
    fn scram_start(&mut self, first: ClientFirst) {
        let conn = self.cur_conn();
        let Some(client) = self.clients.get(&conn) else { return };
        if client.login_pending {
            self.sasl_fail("A login is already being checked; wait for its answer");
            return;
        }
        let ip = client.info.ip;
        let ticket = match self.throttle.begin_login(&casefold(&first.user), ip, self.now.mono, &self.cfg.limits) {
            Ok(ticket) => ticket,
            Err(wait) => {
                tracing::info!(target: "audit", %conn, %ip, account = ?first.user, %wait, "login throttled");
                self.sasl_fail(&format!("Too many failed logins; try again in {}", seconds(wait)));
                return;
            }
        };
        if let Some(client) = self.clients.get_mut(&conn) {
            client.login_pending = true;
        }
        self.charge(self.cfg.limits.login_cost);
        let label = self.take_label();
        let request = Request::ScramCredentials { account: first.user.clone() };
        self.request(request, Pending::Scram { conn, first: Box::new(first), ticket, label });
    }

    /// The credentials arrived: send the server-first message, or fail.
    pub(crate) fn scram_lookup_result(
        &mut self,
        conn: ConnId,
        first: ClientFirst,
        ticket: Ticket,
        result: Result<ScramLookup, Failure>,
    ) {
        let (now, limits) = (self.now.mono, &self.cfg.limits);
        let found = match result {
            Ok(ScramLookup { account, credentials: Some(credentials), server_nonce }) => {
                Some((account, credentials, server_nonce))
            }
            Ok(ScramLookup { credentials: None, .. }) => {
                self.throttle.settle(ticket, Outcome::Unknown, now, limits);
                self.scram_lookup_failed(
                    conn,
                    "this account has no SCRAM credentials yet; log in once with PLAIN (or change the password)",
                );
                return;
            }
            Err(Failure::Unavailable(why)) => {
                self.throttle.settle(ticket, Outcome::Unknown, now, limits);
                self.scram_lookup_failed(conn, &why);
                return;
            }
            // An unknown account counts like PLAIN's unknown account: as a failed guess.
            Err(_) => {
                self.settle_login(ticket, Outcome::Failed);
                let ip = self.clients.get(&conn).map(|c| c.info.ip.to_string()).unwrap_or_default();
                tracing::info!(target: "audit", %conn, %ip, account = ?first.user, via = "scram", "login failed");
                self.scram_lookup_failed(conn, "Invalid account name or password");
                return;
            }
        };
        let Some((account, credentials, server_nonce)) = found else { return };
        let Some(client) = self.clients.get_mut(&conn) else {
            self.throttle.settle(ticket, Outcome::Unknown, now, limits);
            return;
        };
        let server_first = scram::server_first(&first.nonce, &server_nonce, &credentials);
        let nonce = format!("{}{server_nonce}", first.nonce);
        let exchange = ScramExchange { first, server_first: server_first.clone(), nonce, credentials, account, ticket };
        client.extra_mut().sasl =
            Some(SaslState { buffer: String::new(), step: SaslStep::ScramFinal(Box::new(exchange)) });
        self.send_sasl(conn, server_first.as_bytes());
    }

    fn scram_lookup_failed(&mut self, conn: ConnId, why: &str) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.login_pending = false;
            self.sasl_fail(why);
        }
    }

    /// The client-final message arrived: check the proof, settle the attempt.
    fn scram_final(&mut self, conn: ConnId, decoded: Option<Vec<u8>>, exchange: ScramExchange) {
        let ScramExchange { first, server_first, nonce, credentials, account, ticket } = exchange;
        let text = decoded.and_then(|d| String::from_utf8(d).ok());
        let result = match &text {
            Some(text) => scram::verify_client_final(text, &first, &server_first, &nonce, &credentials),
            None => Err(None),
        };
        let outcome = match result {
            Ok(_) => Outcome::Succeeded,
            Err(Some(())) => Outcome::Failed,
            Err(None) => Outcome::Unknown,
        };
        self.settle_login(ticket, outcome);
        let Some(client) = self.clients.get_mut(&conn) else { return };
        client.login_pending = false;
        let ip = client.info.ip;
        match result {
            Ok(server_final) => {
                tracing::info!(target: "audit", %conn, %ip, account = %account, via = "scram", "login succeeded");
                client.extra_mut().sasl =
                    Some(SaslState { buffer: String::new(), step: SaslStep::ScramAck { account } });
                self.send_sasl(conn, server_final.as_bytes());
            }
            Err(Some(())) => {
                tracing::info!(target: "audit", %conn, %ip, account = ?account, via = "scram", "login failed");
                self.sasl_fail("Invalid account name or password");
            }
            Err(None) => self.sasl_fail("malformed SCRAM message"),
        }
    }

    /// Sends a server challenge, base64 in chunks of [`SASL_CHUNK`] (a final `+` if the last
    /// chunk is full).
    fn send_sasl(&mut self, conn: ConnId, payload: &[u8]) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
        let mut rest = b64.as_str();
        loop {
            let (chunk, tail) = rest.split_at(rest.len().min(SASL_CHUNK));
            self.send_msg(conn, Message::new("AUTHENTICATE").with_param(if chunk.is_empty() { "+" } else { chunk }));
            if chunk.len() < SASL_CHUNK {
                break;
            }
            rest = tail;
        }
    }
}

/// `authzid \0 authcid \0 password`. The authorization identity, if given, must be the
/// authentication identity (we do not log in as someone else).
fn decode_plain(raw: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.split('\0');
    let (authz, authc, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || authc.is_empty() || password.is_empty() {
        return None;
    }
    if !authz.is_empty() && casefold(authz) != casefold(authc) {
        return None;
    }
    Some((authc.to_owned(), password.to_owned()))
}
