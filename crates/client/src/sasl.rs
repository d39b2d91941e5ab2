//! SASL in the session: which mechanism to use, and the `AUTHENTICATE` exchange.
//!
//! SCRAM-SHA-256 is preferred whenever the server lists it in `sasl=`: the password never
//! leaves the client, and the server must prove that it holds the account's credentials before
//! the client believes it is logged in. PLAIN is the fallback: for servers that list only it
//! (or no list at all, as CAP 301 servers), and for one SCRAM attempt that failed before the
//! client sent its proof (an account registered before the server kept SCRAM credentials is
//! refused at the first message; PLAIN then logs in and lets the server derive them). A SCRAM
//! failure after the proof is a wrong password, and is not tried again with PLAIN.
//!
//! A server that answers our proof without the right signature, or says the login worked
//! without one, is refused: the session stops ([`Event::Fatal`]) rather than chat with a
//! server that could not show it knows the account.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chinwag_proto::Message;

use crate::event::Event;
use crate::scram::{self, ScramClient, ScramError};
use crate::session::Session;

/// SASL payloads go in chunks of this many base64 characters (IRCv3 SASL 3.1).
const SASL_CHUNK: usize = 400;
/// Longest server message we take (SCRAM's are about a hundred bytes); beyond it the exchange
/// is abandoned.
const MAX_SERVER_MESSAGE: usize = 4 * SASL_CHUNK;

/// An exchange in progress on this connection.
#[derive(Debug)]
pub(crate) enum Sasl {
    Plain,
    Scram {
        client: Box<ScramClient>,
        /// The current server message's base64 so far.
        buffer: String,
        /// Whether the client-first message has gone.
        started: bool,
    },
    /// The server failed to prove itself: nothing it says about the login is believed on this
    /// connection (the session is quitting).
    Refused,
}

/// Mechanisms we speak, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    ScramSha256,
    Plain,
}

impl Session {
    /// The mechanism to use with this server, if it offers one we speak. A `sasl` capability
    /// without a list (CAP 301) is taken to offer PLAIN.
    pub(crate) fn sasl_mechanism(&self) -> Option<Mechanism> {
        let list = self.offered.get("sasl")?;
        if list.is_empty() {
            return Some(Mechanism::Plain);
        }
        let offers = |m: &str| list.split(',').any(|x| x.eq_ignore_ascii_case(m));
        if offers("SCRAM-SHA-256") {
            Some(Mechanism::ScramSha256)
        } else if offers("PLAIN") {
            Some(Mechanism::Plain)
        } else {
            None
        }
    }

    fn offers_plain(&self) -> bool {
        self.offered.get("sasl").is_some_and(|l| l.is_empty() || l.split(',').any(|m| m.eq_ignore_ascii_case("PLAIN")))
    }

    /// `sasl` was acknowledged: start the exchange with the best mechanism.
    pub(crate) fn start_sasl(&mut self) {
        let Some(c) = self.cfg.credentials.clone() else { return };
        match self.sasl_mechanism() {
            Some(Mechanism::ScramSha256) => {
                let client = Box::new(ScramClient::new(&c.account, &c.password, &scram::new_nonce()));
                self.sasl = Some(Sasl::Scram { client, buffer: String::new(), started: false });
                self.send(Message::new("AUTHENTICATE").with_param("SCRAM-SHA-256"));
            }
            _ => self.start_plain(),
        }
    }

    fn start_plain(&mut self) {
        self.sasl = Some(Sasl::Plain);
        self.send(Message::new("AUTHENTICATE").with_param("PLAIN"));
    }

    /// One `AUTHENTICATE` line from the server.
    pub(crate) fn on_authenticate(&mut self, data: &str) {
        match &mut self.sasl {
            None | Some(Sasl::Refused) => {}
            Some(Sasl::Plain) => {
                if data == "+" {
                    self.send_sasl_plain();
                }
            }
            Some(Sasl::Scram { client, buffer, started }) => {
                if data != "+" {
                    buffer.push_str(data);
                }
                if buffer.len() > MAX_SERVER_MESSAGE {
                    return self.abort_sasl("the server's SASL message is too long".into());
                }
                if data.len() == SASL_CHUNK {
                    return;
                }
                let payload = std::mem::take(buffer);
                if !*started {
                    *started = true;
                    let first = client.client_first().to_owned();
                    return self.send_sasl(first.as_bytes());
                }
                let Some(text) = B64.decode(&payload).ok().and_then(|d| String::from_utf8(d).ok()) else {
                    return self.abort_sasl(ScramError::Malformed("not base64 text").to_string());
                };
                let result = if client.proof_sent() {
                    client.server_final(&text).map(|()| None)
                } else {
                    client.server_first(&text).map(Some)
                };
                match result {
                    Ok(Some(last)) => self.send_sasl(last.as_bytes()),
                    // The server proved itself: acknowledge, and its 900/903 follow.
                    Ok(None) => self.send(Message::new("AUTHENTICATE").with_param("+")),
                    Err(ScramError::ServerSignature) => self.refuse_server(&ScramError::ServerSignature.to_string()),
                    Err(e) => self.abort_sasl(e.to_string()),
                }
            }
        }
    }

    /// 900 or 903: whether to believe it. During SCRAM only once the server proved itself;
    /// otherwise the session stops.
    pub(crate) fn sasl_success_believed(&mut self) -> bool {
        match &self.sasl {
            Some(Sasl::Refused) => false,
            Some(Sasl::Scram { client, .. }) if !client.verified() => {
                self.refuse_server(
                    "the server said the login worked without proving that it knows your password (no SCRAM \
                     server signature)",
                );
                false
            }
            _ => true,
        }
    }

    /// 903: the exchange is over, registration goes on (if the success is believed).
    pub(crate) fn sasl_succeeded(&mut self) {
        if self.sasl_success_believed() {
            self.sasl = None;
            self.end_cap();
        }
    }

    /// 902, 904–907: `true` if another mechanism is being tried (the failure is not the
    /// user's news yet).
    pub(crate) fn sasl_failed(&mut self, text: &str) -> bool {
        if matches!(self.sasl, Some(Sasl::Refused)) {
            return true;
        }
        let retry =
            matches!(&self.sasl, Some(Sasl::Scram { client, .. }) if !client.proof_sent()) && self.offers_plain();
        if retry {
            self.emit(Event::Info { text: format!("SCRAM-SHA-256 login did not start ({text}); trying PLAIN") });
            self.start_plain();
            return true;
        }
        self.sasl = None;
        false
    }

    /// Gives up the exchange (the server then answers 906) and says why.
    fn abort_sasl(&mut self, why: String) {
        self.sasl = None;
        self.send(Message::new("AUTHENTICATE").with_param("*"));
        self.emit(Event::Error { text: format!("login failed: {why}") });
    }

    /// The server could not prove it knows the credentials: stop for good.
    fn refuse_server(&mut self, why: &str) {
        self.sasl = Some(Sasl::Refused);
        self.send(Message::new("AUTHENTICATE").with_param("*"));
        let account = self.cfg.credentials.as_ref().map_or("", |c| c.account.as_str()).to_owned();
        self.emit(Event::Fatal { text: format!("refusing to log in as {account}: {why}") });
        self.quit_now(Some("login refused".into()));
    }

    /// The SASL PLAIN payload in chunks.
    fn send_sasl_plain(&mut self) {
        let Some(c) = self.cfg.credentials.clone() else {
            return self.send(Message::new("AUTHENTICATE").with_param("*"));
        };
        self.send_sasl(format!("\0{}\0{}", c.account, c.password).as_bytes());
    }

    /// A payload as base64 in chunks, ending with `+` when the last chunk is full.
    fn send_sasl(&mut self, payload: &[u8]) {
        let encoded = B64.encode(payload);
        let bytes = encoded.as_bytes();
        for chunk in bytes.chunks(SASL_CHUNK) {
            self.send(Message::new("AUTHENTICATE").with_param(String::from_utf8_lossy(chunk).into_owned()));
        }
        if bytes.len().is_multiple_of(SASL_CHUNK) {
            self.send(Message::new("AUTHENTICATE").with_param("+"));
        }
    }
}
