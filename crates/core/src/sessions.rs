//! Who is logged in to each account: the index from an account to its connections, and what
//! the server keeps for an account while any of them is here (its read markers).
//!
//! A client's account changes in three places only (`Server::log_in`, `Server::log_out`, and
//! `Server::remove_client` when it leaves), and each keeps this index in step, so that
//! "every connection of this account" (read-marker sync, REDACT of a private message, NickServ
//! INFO, dropping an account, end-to-end devices) is one lookup instead of a scan of every client.

use std::collections::HashMap;

use crate::ids::ConnId;

/// Every account with a connection logged in to it, by folded name.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    accounts: HashMap<String, Session>,
}

/// One account's connections and what is kept for it while it has any.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// In the order they logged in; a handful at most (one per device).
    pub conns: Vec<ConnId>,
    /// The account's read markers (folded target → time ms), once storage answered for them;
    /// `None` before (they are loaded only for connections with `draft/read-marker`, see
    /// `handlers/markread.rs`) or if that failed. At most [`crate::MAX_READ_MARKERS`].
    pub markers: Option<HashMap<String, u64>>,
}

impl Sessions {
    /// `conn` logged in to `account` (folded).
    pub fn add(&mut self, account: &str, conn: ConnId) {
        let session = self.accounts.entry(account.to_owned()).or_default();
        if !session.conns.contains(&conn) {
            session.conns.push(conn);
        }
    }

    /// `conn` is no longer logged in to `account` (folded); an account left with no connection
    /// is forgotten, and with it what was kept for it.
    pub fn remove(&mut self, account: &str, conn: ConnId) {
        let Some(session) = self.accounts.get_mut(account) else { return };
        session.conns.retain(|c| *c != conn);
        if session.conns.is_empty() {
            self.accounts.remove(account);
        }
    }

    /// The connections logged in to `account` (folded).
    pub fn conns(&self, account: &str) -> &[ConnId] {
        self.accounts.get(account).map_or(&[], |s| s.conns.as_slice())
    }

    pub fn get(&self, account: &str) -> Option<&Session> {
        self.accounts.get(account)
    }

    pub fn get_mut(&mut self, account: &str) -> Option<&mut Session> {
        self.accounts.get_mut(account)
    }
}
