//! Offline queues: private messages kept for an account (or an end-to-end device) that was not
//! connected, delivered when it logs in.
//!
//! A queued message leaves its queue only once the client has demonstrably read past it:
//! messages go out a page at a time, each page followed by `PING :<token>`, and only the
//! client's `PONG` with that token clears the page (`Effect::ClearOffline`) and asks for the
//! next. A client that drops before answering, or whose SendQ overflows, gets the page again at
//! its next login (each message keeps its msgid, so a client with message-tags can tell a
//! repeat). Pages are small enough that one page fits a connection's SendQ, and a page goes out
//! only after the client read the previous one.
//!
//! Each queue holds at most `limits.offline_queue_len` messages; a sender whose message would
//! go beyond it is told, and the message is neither kept nor echoed.

use chinwag_proto::Message;

use crate::ids::ConnId;
use crate::server::{Pending, Server};
use crate::store::{HistoryItem, Request};

/// A page of offline messages sent and not yet acknowledged by the client.
#[derive(Debug)]
pub(crate) struct OfflineAck {
    /// The PING parameter whose PONG acknowledges the page.
    token: String,
    /// The queue: a folded account, or a device's queue.
    queue: String,
    /// The page's last message: the queue is cleared up to it.
    up_to: String,
    /// Messages in the page.
    count: usize,
    /// Whether the page was full, so more may wait.
    more: bool,
}

impl Server {
    /// Starts delivering `queue` (an account's, or a device's) to `conn`, unless a page of it
    /// already waits there for its PONG (which asks for the next): publishing a device again
    /// must not fetch and send the same page again, nor add an acknowledgement per try.
    pub(crate) fn request_offline(&mut self, conn: ConnId, queue: &str) {
        let unacknowledged = self
            .clients
            .get(&conn)
            .and_then(|c| c.extra())
            .is_some_and(|e| e.offline_acks.iter().any(|a| a.queue == queue));
        if unacknowledged {
            return;
        }
        let limit = self.cfg.limits.offline_page.max(1);
        let req = Request::Offline { account: queue.to_owned(), limit };
        self.request(req, Pending::Offline { conn, account: queue.to_owned() });
    }

    /// A page of `queue` arrived from storage: send it, then the PING that acknowledges it.
    pub(crate) fn offline_page(&mut self, conn: ConnId, queue: String, items: &[HistoryItem]) {
        let Some(last) = items.last() else { return };
        if !self.clients.contains_key(&conn) {
            return;
        }
        for item in items {
            for msg in self.replay(conn, item, None) {
                self.send_msg(conn, msg);
            }
        }
        self.offline_seq += 1;
        let token = format!("chinwag-offline-{}", self.offline_seq);
        let ack = OfflineAck {
            token: token.clone(),
            queue,
            up_to: last.msgid.clone(),
            count: items.len(),
            more: items.len() >= self.cfg.limits.offline_page.max(1),
        };
        if let Some(client) = self.clients.get_mut(&conn) {
            client.extra_mut().offline_acks.push(ack);
        }
        let ping = self.server_msg("PING").with_param(token);
        self.send_msg(conn, ping);
    }

    /// A PONG: if it answers a page's PING, the page was read and leaves its queue.
    pub(crate) fn handle_pong(&mut self, msg: &Message) {
        let conn = self.cur_conn();
        let Some(client) = self.clients.get_mut(&conn) else { return };
        let Some(extra) = client.existing_extra_mut() else { return };
        let Some(i) = extra.offline_acks.iter().position(|a| msg.params.contains(&a.token)) else {
            return;
        };
        let ack = extra.offline_acks.remove(i);
        client.tidy();
        self.clear_offline(&ack.queue, &ack.up_to);
        if let Some(count) = self.offline_counts.get_mut(&ack.queue) {
            *count = count.saturating_sub(ack.count);
            if *count == 0 {
                self.offline_counts.remove(&ack.queue);
            }
        }
        if ack.more {
            self.request_offline(conn, &ack.queue);
        } else {
            self.publish_queue_read(&ack.queue);
        }
    }

    /// Takes one place in `queue` for a message about to be kept there; `false` (and the
    /// sender told why) if the queue is full.
    pub(crate) fn reserve_offline(&mut self, queue: &str, shown_as: &str) -> bool {
        let cap = self.cfg.limits.offline_queue_len;
        let count = self.offline_counts.entry(queue.to_owned()).or_default();
        if *count >= cap {
            let text = format!(
                "{shown_as} has {cap} messages waiting, as many as can be kept; this one was not kept. \
                 Try again once they have read theirs."
            );
            let nick = self.cur_client().map_or("*", |c| c.nick_or_star()).to_owned();
            let notice = self.server_msg("NOTICE").with_params([nick, text]);
            self.send_msg(self.cur_conn(), notice);
            return false;
        }
        *count += 1;
        true
    }

    /// How many messages each offline queue holds, as storage counted them at start.
    pub fn restore_offline_counts(&mut self, counts: impl IntoIterator<Item = (String, usize)>) {
        self.offline_counts.extend(counts.into_iter().filter(|(_, n)| *n > 0));
    }
}
