//! Accounts: password logins (SASL PLAIN, whose exchange is in `sasl.rs`), IRCv3 `REGISTER`, NickServ, `PASS account:password`, and what follows
//! a login (900, account-notify, offline messages, nick protection).
//!
//! Passwords never stay in the core: they go out in a [`Request`] to the edge, which hashes or
//! checks them off the core's task. Before that, two rules apply: a password is refused on a
//! plaintext connection from a non-loopback address (it has already crossed the network in
//! clear, and the answer tells the user to use TLS), and throttled accounts and addresses are
//! refused with the time to wait.

use chinwag_proto::{casefold, Message, Nick};

use crate::caps::Cap;
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::{Pending, Server};
use crate::store::{Failure, Request, Response};
use crate::text::seconds;
use crate::throttle::{Outcome, Ticket};

/// Longest password (bytes); longer ones are refused rather than silently cut.
pub const MAX_PASSWORD_LEN: usize = 256;
/// The services pseudo-user's prefix.
pub const NICKSERV: &str = "NickServ";
const NICKSERV_PREFIX: &str = "NickServ!NickServ@services.chinwag";
pub(crate) const INSECURE: &str =
    "Refusing a password over a plaintext connection from the network: reconnect with TLS (port 6697)";

/// How a login attempt arrived, which decides how its outcome is told.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum LoginVia {
    Sasl,
    NickServ,
    Pass,
}

/// How a registration arrived.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegisterVia {
    Ircv3,
    NickServ,
}

impl Server {
    /// Whether `conn` came over plaintext from a non-loopback address.
    pub(crate) fn insecure(&self, conn: ConnId) -> bool {
        self.clients.get(&conn).is_some_and(|c| !c.info.tls && !c.info.ip.is_loopback())
    }

    /// Starts a password check after the transport and throttle rules allow it. The attempt is
    /// counted by the throttle now, while the check runs, not when its answer comes.
    pub(crate) fn attempt_login(&mut self, account: &str, password: String, via: LoginVia) {
        let conn = self.cur_conn();
        if self.insecure(conn) {
            self.login_refused(via, INSECURE);
            return;
        }
        let Some(client) = self.clients.get(&conn) else { return };
        if client.login_pending {
            self.login_refused(via, "A login is already being checked; wait for its answer");
            return;
        }
        let ip = client.info.ip;
        let ticket = match self.throttle.begin_login(&casefold(account), ip, self.now.mono, &self.cfg.limits) {
            Ok(ticket) => ticket,
            Err(wait) => {
                tracing::info!(target: "audit", %conn, %ip, account = ?account, %wait, "login throttled");
                let text = format!("Too many failed logins; try again in {}", seconds(wait));
                self.login_refused(via, &text);
                return;
            }
        };
        if let Some(client) = self.clients.get_mut(&conn) {
            client.login_pending = true;
        }
        self.charge(self.cfg.limits.login_cost);
        let label = self.take_label();
        let pending = Pending::Login { conn, account: account.to_owned(), via, ticket, label };
        self.request(Request::CheckPassword { account: account.to_owned(), password }, pending);
    }

    fn login_refused(&mut self, via: LoginVia, why: &str) {
        match via {
            LoginVia::Sasl => self.numeric(ERR_SASLFAIL, [format!("SASL authentication failed: {why}")]),
            LoginVia::NickServ | LoginVia::Pass => self.nickserv_notice(why),
        }
    }

    /// The outcome of a password check. The throttle counts it even if the connection that
    /// asked has gone (hanging up must not take a guess off the books).
    pub(crate) fn login_result(
        &mut self,
        conn: ConnId,
        tried: &str,
        via: LoginVia,
        ticket: Ticket,
        result: Result<String, Failure>,
    ) {
        let outcome = match &result {
            Ok(_) => Outcome::Succeeded,
            Err(Failure::Unavailable(_)) => Outcome::Unknown,
            Err(_) => Outcome::Failed,
        };
        self.settle_login(ticket, outcome);
        let Some(client) = self.clients.get_mut(&conn) else { return };
        client.login_pending = false;
        let ip = client.info.ip;
        match result {
            Ok(account) => {
                tracing::info!(target: "audit", %conn, %ip, account = %account, via = ?via, "login succeeded");
                self.log_in(conn, &account);
                match via {
                    LoginVia::Sasl => self.numeric(RPL_SASLSUCCESS, ["SASL authentication successful"]),
                    LoginVia::NickServ => self.nickserv_notice(&format!("You are now identified for {account}.")),
                    LoginVia::Pass => {}
                }
            }
            Err(Failure::Unavailable(why)) => {
                tracing::warn!(target: "audit", %conn, %ip, via = ?via, %why, "login could not be checked");
                self.login_refused(via, &why);
            }
            Err(_) => {
                // Debug formatting: the name is the peer's text and must not forge log lines.
                tracing::info!(target: "audit", %conn, %ip, account = ?tried, via = ?via, "login failed");
                self.login_refused(via, "Invalid account name or password");
            }
        }
        if via == LoginVia::Pass {
            self.try_register();
        }
    }

    /// Marks `conn` as logged in to `account` and tells whoever should know.
    pub(crate) fn log_in(&mut self, conn: ConnId, account: &str) {
        let Some(client) = self.clients.get_mut(&conn) else { return };
        let before = client.account.replace(account.to_owned());
        // A guest's read markers were the guest's; the account has its own.
        client.clear_extra(|e| e.read_markers.clear());
        if let Some(before) = before {
            self.sessions.remove(&casefold(&before), conn);
        }
        self.sessions.add(&casefold(account), conn);
        let Some(client) = self.clients.get_mut(&conn) else { return };
        if client.nick().is_some_and(|n| n.folded() == casefold(account)) {
            client.clear_extra(|e| e.nick_deadline = None);
        }
        let registered = client.registered;
        let prefix = client.prefix().to_owned();
        self.numeric_to(
            conn,
            RPL_LOGGEDIN,
            [prefix, account.to_owned(), format!("You are now logged in as {account}")],
        );
        if registered {
            if let Some(mut ev) = self.cur_event(Message::new("ACCOUNT").with_param(account)) {
                let stamp = self.stamp_of(&ev);
                let account = Some(account.to_owned());
                self.user_changed(conn, |uid| crate::cluster::NetEvent::Account { uid, account, stamp });
                let peers: Vec<ConnId> = self.presence_watchers(conn, Cap::AccountNotify).into_iter().collect();
                self.deliver_all(&mut ev, peers);
            }
            self.request_offline(conn, account);
        }
        self.markers_after_login(conn);
    }

    pub(crate) fn handle_register(&mut self, msg: &Message) {
        if msg.params.len() < 3 {
            self.need_more_params("REGISTER");
            return;
        }
        let (account, email, password) = (&msg.params[0], &msg.params[1], &msg.params[2]);
        let Some(client) = self.cur_client() else { return };
        if let Some(current) = &client.account {
            let current = current.clone();
            self.fail("REGISTER", "ALREADY_AUTHENTICATED", &[&current], "You are already logged in");
            return;
        }
        let Some(nick) = client.nick().cloned() else {
            self.fail("REGISTER", "NEED_NICK", &["*"], "Send NICK before REGISTER");
            return;
        };
        if account != "*" && casefold(account) != nick.folded() {
            self.fail("REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", &[account], "The account name must be your nick");
            return;
        }
        if !client.registered && !self.cfg.accounts.registration_before_connect {
            let text = "Complete the connection (NICK and USER) before REGISTER";
            self.fail("REGISTER", "COMPLETE_CONNECTION_REQUIRED", &[nick.as_str()], text);
            return;
        }
        let email = (email != "*").then(|| email.clone());
        if email.is_none() && self.cfg.accounts.email_required {
            self.fail("REGISTER", "INVALID_EMAIL", &[nick.as_str()], "An email address is required");
            return;
        }
        if email.as_deref().is_some_and(|e| !valid_email(e)) {
            self.fail("REGISTER", "INVALID_EMAIL", &[nick.as_str()], "That does not look like an email address");
            return;
        }
        self.start_register(nick, email, password.clone(), RegisterVia::Ircv3);
    }

    /// Shared by REGISTER and NickServ REGISTER once the account name is known.
    fn start_register(&mut self, nick: Nick, email: Option<String>, password: String, via: RegisterVia) {
        let conn = self.cur_conn();
        let refuse = |s: &mut Server, code: &str, text: &str| match via {
            RegisterVia::Ircv3 => s.fail("REGISTER", code, &[nick.as_str()], text),
            RegisterVia::NickServ => s.nickserv_notice(text),
        };
        if self.insecure(conn) {
            refuse(self, "INSECURE_CONNECTION", INSECURE);
        } else if self.accounts.contains_key(nick.folded()) {
            refuse(self, "ACCOUNT_EXISTS", "That account already exists; log in instead");
        } else if password.len() < self.cfg.accounts.min_password_length {
            let min = self.cfg.accounts.min_password_length;
            refuse(self, "WEAK_PASSWORD", &format!("Passwords must be at least {min} characters"));
        } else if password.len() > MAX_PASSWORD_LEN {
            refuse(self, "WEAK_PASSWORD", &format!("Passwords must be at most {MAX_PASSWORD_LEN} bytes"));
        } else if casefold(&password) == nick.folded() {
            refuse(self, "WEAK_PASSWORD", "Your password must not be your nick");
        } else if let Err(wait) = self.register_allowed(conn) {
            let text = format!("Too many accounts registered from your address; try again in {}", seconds(wait));
            refuse(self, "TEMPORARILY_UNAVAILABLE", &text);
        } else {
            self.charge(self.cfg.limits.login_cost);
            let label = self.take_label();
            let account = nick.as_str().to_owned();
            self.request(Request::Register { account, email, password }, Pending::Register { conn, via, label });
        }
    }

    /// Takes one account registration from the budget of `conn`'s address; loopback (the
    /// operator's own machine) is not limited.
    fn register_allowed(&mut self, conn: ConnId) -> Result<(), u64> {
        let Some(ip) = self.clients.get(&conn).map(|c| c.info.ip) else { return Ok(()) };
        if ip.to_canonical().is_loopback() {
            return Ok(());
        }
        let result = self.throttle.register(ip, self.now.mono, self.cfg.limits.registrations);
        match result {
            Ok(()) => self.share_registration(ip),
            Err(wait) => tracing::info!(target: "audit", %conn, %ip, %wait, "registration throttled"),
        }
        result
    }

    pub(crate) fn register_result(&mut self, conn: ConnId, via: RegisterVia, result: Result<String, Failure>) {
        match result {
            Ok(account) => {
                self.accounts.insert(casefold(&account), account.clone());
                self.append_net_event(crate::cluster::NetEvent::AccountRegistered { account: account.clone() });
                let ip = self.clients.get(&conn).map(|c| c.info.ip.to_string()).unwrap_or_default();
                tracing::info!(target: "audit", %conn, %ip, account = %account, "account registered");
                if !self.clients.contains_key(&conn) {
                    return;
                }
                match via {
                    RegisterVia::Ircv3 => {
                        let msg = self.server_msg("REGISTER").with_params([
                            "SUCCESS",
                            account.as_str(),
                            "Account created; you are logged in",
                        ]);
                        self.send_msg(conn, msg);
                    }
                    RegisterVia::NickServ => {
                        self.nickserv_notice(&format!("Account {account} created; you are logged in."));
                    }
                }
                self.log_in(conn, &account);
            }
            Err(failure) => {
                let (code, text) = match &failure {
                    Failure::AccountExists => ("ACCOUNT_EXISTS", "That account already exists; log in instead".into()),
                    Failure::Unavailable(why) => ("TEMPORARILY_UNAVAILABLE", why.clone()),
                    other => ("TEMPORARILY_UNAVAILABLE", format!("Registration failed: {other:?}")),
                };
                match via {
                    RegisterVia::Ircv3 => self.fail("REGISTER", code, &["*"], &text),
                    RegisterVia::NickServ => self.nickserv_notice(&text),
                }
            }
        }
    }

    /// `NICKSERV <text>` / `NS <text>` (some clients' shortcut for `/msg NickServ`).
    pub(crate) fn handle_ns_command(&mut self, msg: &Message) {
        let text = msg.params.join(" ");
        self.handle_nickserv(&text);
    }

    /// A PRIVMSG to NickServ.
    pub(crate) fn handle_nickserv(&mut self, text: &str) {
        let mut words = text.split_ascii_whitespace();
        let command = words.next().unwrap_or("HELP").to_ascii_uppercase();
        let args: Vec<String> = words.map(str::to_owned).collect();
        let conn = self.cur_conn();
        let Some(client) = self.clients.get(&conn) else { return };
        let nick = client.nick().cloned();
        let account = client.account.clone();
        match (command.as_str(), args.as_slice()) {
            ("REGISTER", [password, rest @ ..]) => {
                if let Some(current) = account {
                    self.nickserv_notice(&format!("You are already logged in as {current}."));
                } else if let Some(nick) = nick {
                    let email = rest.first().cloned();
                    if email.is_none() && self.cfg.accounts.email_required {
                        self.nickserv_notice("An email address is required: REGISTER <password> <email>");
                    } else if email.as_deref().is_some_and(|e| !valid_email(e)) {
                        self.nickserv_notice("That does not look like an email address.");
                    } else {
                        self.start_register(nick, email, password.clone(), RegisterVia::NickServ);
                    }
                }
            }
            ("IDENTIFY" | "LOGIN", [password]) => {
                let name = nick.map(|n| n.as_str().to_owned()).unwrap_or_default();
                self.nickserv_identify(&name, password.clone(), account);
            }
            ("IDENTIFY" | "LOGIN", [name, password]) => {
                let name = name.clone();
                self.nickserv_identify(&name, password.clone(), account);
            }
            ("INFO", rest) => {
                let name = rest.first().cloned().or(account).or_else(|| nick.map(|n| n.as_str().to_owned()));
                let name = name.unwrap_or_default();
                self.nickserv_info(&name);
            }
            ("SET", [what, password]) if what.eq_ignore_ascii_case("PASSWORD") => match account {
                None => self.nickserv_notice("Log in first: /msg NickServ IDENTIFY <password>"),
                Some(_) if self.insecure(conn) => self.nickserv_notice(INSECURE),
                Some(_)
                    if password.len() < self.cfg.accounts.min_password_length || password.len() > MAX_PASSWORD_LEN =>
                {
                    let min = self.cfg.accounts.min_password_length;
                    let text = format!("Passwords must be {min} to {MAX_PASSWORD_LEN} characters");
                    self.nickserv_notice(&text);
                }
                Some(account) => {
                    // Hashing the new password is an Argon2id run like a login's.
                    self.charge(self.cfg.limits.login_cost);
                    let label = self.take_label();
                    let req = Request::SetPassword { account, password: password.clone() };
                    self.request(req, Pending::SetPassword { conn, label });
                }
            },
            ("DROP", [password]) => match account {
                None => self.nickserv_notice("Log in first: /msg NickServ IDENTIFY <password>"),
                Some(_) if self.insecure(conn) => self.nickserv_notice(INSECURE),
                Some(account) => {
                    // Checking the password is an Argon2id run like a login's, and a stolen
                    // session must not guess the password faster than a login could.
                    self.charge(self.cfg.limits.login_cost);
                    let label = self.take_label();
                    let req = Request::DropAccount { account: account.clone(), password: password.clone() };
                    self.request(req, Pending::Drop { conn, account, label });
                }
            },
            ("GHOST", [target]) => self.nickserv_ghost(target, account),
            ("CERT", [sub, rest @ ..]) => self.nickserv_cert(sub, rest.first().map(String::as_str), account),
            _ => {
                for line in [
                    "NickServ commands:",
                    "REGISTER <password> [email]  - register your current nick as an account",
                    "IDENTIFY [account] <password> - log in",
                    "INFO [account]               - about an account",
                    "SET PASSWORD <new password>  - change your password",
                    "DROP <password>              - delete your account",
                    "GHOST <nick>                 - disconnect a session using your account's nick",
                    "CERT ADD [fingerprint]       - log in with this TLS client certificate (SASL EXTERNAL)",
                    "CERT DEL <fingerprint>       - stop accepting a client certificate",
                    "CERT LIST                    - your account's client certificates",
                ] {
                    self.nickserv_notice(line);
                }
            }
        }
    }

    fn nickserv_identify(&mut self, name: &str, password: String, current: Option<String>) {
        if let Some(current) = current {
            self.nickserv_notice(&format!("You are already logged in as {current}."));
        } else if name.is_empty() {
            self.nickserv_notice("Usage: IDENTIFY [account] <password>");
        } else {
            self.attempt_login(name, password, LoginVia::NickServ);
        }
    }

    fn nickserv_info(&mut self, name: &str) {
        let folded = casefold(name);
        let Some(display) = self.accounts.get(&folded).cloned() else {
            self.nickserv_notice(&format!("{name} is not a registered account."));
            return;
        };
        let sessions: Vec<String> = self
            .sessions
            .conns(&folded)
            .iter()
            .filter_map(|c| self.clients.get(c))
            .map(|c| c.nick_or_star().to_owned())
            .collect();
        self.nickserv_notice(&format!("{display} is a registered account."));
        if sessions.is_empty() {
            self.nickserv_notice(&format!("{display} is not logged in right now."));
        } else {
            self.nickserv_notice(&format!("{display} is logged in as: {}", sessions.join(" ")));
        }
    }

    fn nickserv_ghost(&mut self, target: &str, account: Option<String>) {
        let Some(account) = account else {
            self.nickserv_notice("Log in first: /msg NickServ IDENTIFY <password>");
            return;
        };
        if casefold(target) != casefold(&account) {
            self.nickserv_notice(&format!("You may only ghost your account's nick, {account}."));
            return;
        }
        match self.find_nick(target) {
            Some(victim) if victim != self.cur_conn() => {
                self.close(victim, &format!("Ghosted by {account}"));
                self.nickserv_notice(&format!("{target} has been disconnected."));
            }
            // In a cluster, the session holding the nick may be on another node.
            None if self.kill_remote(target, &format!("Ghosted by {account}"), "NickServ") => {
                self.nickserv_notice(&format!("{target} has been disconnected."));
            }
            _ => self.nickserv_notice(&format!("{target} is not in use by another session.")),
        }
    }

    pub(crate) fn set_password_result(&mut self, result: Result<(), Failure>) {
        match result {
            Ok(()) => self.nickserv_notice("Your password has been changed."),
            Err(f) => self.nickserv_notice(&failure_text(&f)),
        }
    }

    pub(crate) fn drop_result(&mut self, conn: ConnId, account: &str, result: Result<(), Failure>) {
        match result {
            Ok(()) => {
                tracing::info!(target: "audit", %conn, account = %account, "account dropped");
                let folded = casefold(account);
                self.forget_account(account);
                let founded = self.founded_by(&folded);
                match self.cluster_origin() {
                    // The rooms change when the entry is applied, on every node at the same
                    // place in the log (this node saves them then).
                    Some(origin) => {
                        let account = account.to_owned();
                        self.append_net_event(crate::cluster::NetEvent::AccountDropped {
                            account,
                            origin,
                            rooms: founded,
                        });
                    }
                    None => self.forget_founder(&folded, &founded, true),
                }
                self.nickserv_notice(&format!("Account {account} has been deleted."));
            }
            Err(f) => self.nickserv_notice(&failure_text(&f)),
        }
    }

    /// An account is gone from storage: its sessions here are logged out and its name is
    /// nobody's (the rooms it founded: [`Server::forget_founder`]).
    pub(crate) fn forget_account(&mut self, account: &str) {
        let folded = casefold(account);
        self.accounts.remove(&folded);
        let sessions: Vec<ConnId> = self.sessions.conns(&folded).to_vec();
        for s in sessions {
            self.log_out(s);
        }
        // Storage deleted the account's queue with it.
        self.offline_counts.remove(&folded);
    }

    /// An account deletion's entry, on every node: another node's deletion is forgotten here
    /// too, and the rooms the account founded then lose their founder (`here`: deleted on this
    /// node, which saves them).
    pub(crate) fn account_dropped(&mut self, account: &str, here: bool, rooms: &[String]) {
        if !here {
            self.forget_account(account);
        }
        self.forget_founder(&casefold(account), rooms, here);
    }

    /// The rooms (folded) `account` (folded) founded.
    fn founded_by(&self, account: &str) -> Vec<String> {
        self.channels
            .iter()
            .filter(|(_, ch)| ch.founder.as_deref() == Some(account))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// An account registered on another node: known here from now on. A local user who holds
    /// its nick without being logged in to it is asked to, as on the account's own node.
    pub(crate) fn account_registered_elsewhere(&mut self, account: String) {
        let folded = casefold(&account);
        self.accounts.insert(folded.clone(), account);
        if let Some(conn) = self.nicks.get(&folded).copied() {
            self.check_nick_protection(conn);
        }
    }

    /// `conn` is no longer logged in (its account was deleted): it is told, and so are its
    /// peers that follow accounts (account-notify), who would otherwise take it for whoever
    /// registers the name next.
    fn log_out(&mut self, conn: ConnId) {
        let peers: Vec<ConnId> = self.presence_watchers(conn, Cap::AccountNotify).into_iter().collect();
        // Taken out of the map for a moment: the event's source is the client itself.
        let Some(mut client) = self.clients.remove(&conn) else { return };
        if let Some(account) = client.account.take() {
            self.sessions.remove(&casefold(&account), conn);
        }
        let registered = client.registered;
        let ev = registered.then(|| self.event(&client, Message::new("ACCOUNT").with_param("*")));
        self.clients.insert(conn, client);
        self.numeric_to(conn, RPL_LOGGEDOUT, ["*", "You are now logged out"]);
        let stamp = ev.as_ref().and_then(|ev| self.stamp_of(ev));
        self.user_changed(conn, |uid| crate::cluster::NetEvent::Account { uid, account: None, stamp });
        if let Some(mut ev) = ev {
            self.deliver_all(&mut ev, peers);
        }
    }

    /// The account `folded` was deleted: `rooms`, those it founded, have no founder any more
    /// (one founded by someone else since is left alone), so that whoever registers the name
    /// next does not inherit them. An empty one goes, like any room without a founder; `save`:
    /// storage hears of it (on the node that deleted the account).
    fn forget_founder(&mut self, folded: &str, rooms: &[String], save: bool) {
        for name in rooms {
            let Some(ch) = self.channels.get_mut(name).filter(|ch| ch.founder.as_deref() == Some(folded)) else {
                continue;
            };
            ch.founder = None;
            let keep = !ch.members.is_empty() || !ch.remote.is_empty() || ch.permanent;
            if !keep {
                if let Some(ch) = self.channels.remove(name) {
                    self.forget_room(name);
                    if save {
                        self.delete_channel(ch.name.as_str());
                    }
                }
            } else if save {
                self.save_channel(name);
            }
        }
    }

    /// A NOTICE from NickServ to the current client.
    pub(crate) fn nickserv_notice(&mut self, text: &str) {
        let conn = self.cur_conn();
        let nick = self.clients.get(&conn).map_or("*", |c| c.nick_or_star()).to_owned();
        let msg = Message::new("NOTICE").with_source(NICKSERV_PREFIX).with_params([nick.as_str(), text]);
        self.send_msg(conn, msg);
    }

    /// Starts nick protection if `conn` now uses a registered nick it is not logged in to.
    pub(crate) fn check_nick_protection(&mut self, conn: ConnId) {
        let grace = self.cfg.limits.nick_grace;
        let now = self.now.mono;
        let Some(client) = self.clients.get_mut(&conn) else { return };
        let Some(nick) = client.nick() else { return };
        let owned = self.accounts.contains_key(nick.folded());
        let ours = client.account.as_deref().is_some_and(|a| casefold(a) == nick.folded());
        if owned && !ours && client.registered {
            client.extra_mut().nick_deadline = Some(now + grace);
            let text = format!(
                "This nick is registered. Log in within {} (/msg NickServ IDENTIFY <password>) or it will be changed.",
                seconds(grace.as_secs())
            );
            let nick = self.clients.get(&conn).map_or("*", |c| c.nick_or_star()).to_owned();
            let msg = Message::new("NOTICE").with_source(NICKSERV_PREFIX).with_params([nick.as_str(), text.as_str()]);
            self.send_msg(conn, msg);
        } else {
            client.clear_extra(|e| e.nick_deadline = None);
        }
    }

    /// Routes a response to the code that was waiting for it.
    pub(crate) fn account_response(&mut self, pending: Pending, response: Response) {
        match (pending, response) {
            (Pending::Login { conn, account, via, ticket, .. }, Response::Account(r)) => {
                self.login_result(conn, &account, via, ticket, r);
            }
            (Pending::Scram { conn, first, ticket, .. }, Response::Scram(r)) => {
                self.scram_lookup_result(conn, *first, ticket, r);
            }
            (Pending::External { conn, authzid, .. }, Response::Account(r)) => self.external_result(conn, authzid, r),
            (Pending::Cert { .. }, Response::Certs(r)) => self.cert_result(r),
            (Pending::Register { conn, via, .. }, Response::Account(r)) => self.register_result(conn, via, r),
            (Pending::SetPassword { .. }, Response::Done(r)) => self.set_password_result(r),
            (Pending::Drop { conn, account, .. }, Response::Done(r)) => self.drop_result(conn, &account, r),
            (Pending::Login { ticket, .. } | Pending::Scram { ticket, .. }, response) => {
                self.throttle.settle(ticket, Outcome::Unknown, self.now.mono, &self.cfg.limits);
                tracing::error!(?response, "a response of the wrong kind to a login; ignored");
            }
            (pending, response) => {
                tracing::error!(?pending, ?response, "a response of the wrong kind; ignored");
            }
        }
    }
}

fn failure_text(f: &Failure) -> String {
    match f {
        Failure::AccountExists => "That account already exists.".into(),
        Failure::NoSuchAccount | Failure::BadPassword => "Invalid account name or password.".into(),
        Failure::Unavailable(why) => why.clone(),
    }
}

/// A plausible address: something@something.something, no spaces, bounded length.
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else { return false };
    e.len() <= 254 && !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)
}
