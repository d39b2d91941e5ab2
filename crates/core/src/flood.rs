//! Flood control: a token bucket per client, a bounded queue (RecvQ) for commands that came
//! faster than the bucket allows, and the cost of each command.
//!
//! A command runs at once while the client has budget left; after that it waits in the RecvQ
//! and runs when [`Server::tick`] finds the budget refilled, so a flooder is slowed without
//! slowing anyone else (the hub never waits for it). A client whose RecvQ overflows is dropped
//! with "Excess flood". Expensive commands cost more: listings, password checks (Argon2id) and
//! each room joined are charged extra by their handlers through [`Server::charge`].
//!
//! The RecvQ also keeps one client's commands in order: while a command of the client waits
//! for the edge (a password check, a history read; `Client::waiting`), the lines it sent after
//! it wait here, and run when the answer has been handled. Nobody else waits for them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chinwag_proto::{Message, ParseError};

use crate::config::Rate;
use crate::ids::ConnId;
use crate::server::Server;

/// A token bucket kept as one instant ("generic cell rate"): the time at which it will be full
/// again. Its debt is how far that lies in the future; each unit spent adds `rate.every`.
/// The edge uses it too, for new connections per address.
#[derive(Copy, Clone, Debug)]
pub struct Bucket {
    full_at: Instant,
}

impl Bucket {
    pub fn new(now: Instant) -> Self {
        Bucket { full_at: now }
    }

    /// Whether nothing is owed: such a bucket is the same as a new one and can be forgotten.
    pub fn is_full(&self, now: Instant) -> bool {
        self.full_at <= now
    }

    fn debt(&self, now: Instant) -> Duration {
        self.full_at.saturating_duration_since(now)
    }

    /// `Ok` if at least one unit is left now, else the time until one is.
    pub fn check(&self, now: Instant, rate: Rate) -> Result<(), Duration> {
        let room = rate.window().saturating_sub(rate.every);
        let debt = self.debt(now);
        if debt <= room {
            Ok(())
        } else {
            Err(debt - room)
        }
    }

    /// Spends `units`, possibly going beyond the burst: the debt is paid back in time, during
    /// which [`Bucket::check`] refuses.
    pub fn spend(&mut self, now: Instant, rate: Rate, units: u32) {
        let debt = self.debt(now).saturating_add(rate.every.saturating_mul(units));
        // Never owe more than one window beyond the burst: a huge charge must not lock a
        // client out for longer than the configured rate implies.
        self.full_at = now + debt.min(rate.window().saturating_mul(2));
    }

    /// [`Bucket::check`] then [`Bucket::spend`] of `units`, reading the debt once: every line a
    /// client sends comes through here, so it counts in whole nanoseconds, where `Duration`'s
    /// multiplications divide by a billion to carry into seconds.
    pub fn take(&mut self, now: Instant, rate: Rate, units: u32) -> Result<(), Duration> {
        let every = nanos(rate.every);
        let window = every.saturating_mul(u64::from(rate.burst));
        let debt = nanos(self.debt(now));
        let room = window.saturating_sub(every);
        if debt > room {
            return Err(Duration::from_nanos(debt - room));
        }
        let debt = debt.saturating_add(every.saturating_mul(u64::from(units)));
        self.full_at = now + Duration::from_nanos(debt.min(window.saturating_mul(2)));
        Ok(())
    }
}

/// `d` in nanoseconds, saturating (at 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Commands that arrived faster than the client's budget, oldest first.
#[derive(Debug, Default)]
pub(crate) struct RecvQ {
    lines: VecDeque<(Result<Message, ParseError>, usize)>,
    bytes: usize,
}

impl RecvQ {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn push(&mut self, parsed: Result<Message, ParseError>) {
        let size = weight(&parsed);
        self.bytes += size;
        self.lines.push_back((parsed, size));
    }

    fn pop(&mut self) -> Option<Result<Message, ParseError>> {
        let (parsed, size) = self.lines.pop_front()?;
        self.bytes -= size;
        Some(parsed)
    }
}

/// Roughly the bytes a queued line holds: its text plus some overhead per part.
fn weight(parsed: &Result<Message, ParseError>) -> usize {
    match parsed {
        Ok(m) => {
            let tags: usize = m.tags.iter().map(|t| t.key.len() + t.value.len() + 2).sum();
            let params: usize = m.params.iter().map(|p| p.len() + 1).sum();
            16 + m.command.len() + m.source.as_ref().map_or(0, String::len) + tags + params
        }
        Err(_) => 16,
    }
}

/// Units a listing (WHO, NAMES, LIST, ...) costs: its replies are many lines.
pub(crate) const LISTING_COST: u32 = 3;

/// Units a command costs when it runs, before any extra its handler charges. Replies that list
/// many things cost more; a PONG or QUIT costs nothing (they must never wait behind a flood's
/// budget to keep a connection alive or let it go).
fn base_cost(parsed: &Result<Message, ParseError>) -> u32 {
    let Ok(msg) = parsed else { return 1 };
    let command = &msg.command;
    if command.eq_ignore_ascii_case("PONG") || command.eq_ignore_ascii_case("QUIT") {
        return 0;
    }
    const LISTINGS: [&str; 8] = ["WHO", "WHOIS", "WHOWAS", "LIST", "NAMES", "CHATHISTORY", "MOTD", "LUSERS"];
    if LISTINGS.iter().any(|c| command.eq_ignore_ascii_case(c)) {
        LISTING_COST
    } else {
        1
    }
}

impl Server {
    /// A line from `conn` arrived (it counts as activity): it runs at once when the client has
    /// budget left and nothing waiting (almost always, so that a client that never floods never
    /// allocates a RecvQ), else it waits in the RecvQ and what the budget allows runs. Drops the
    /// client with "Excess flood" if its RecvQ overflows. One lookup of the client for all of it:
    /// every line comes through here.
    pub(crate) fn admit(&mut self, conn: ConnId, parsed: Result<Message, ParseError>) {
        let limits = &self.cfg.limits;
        let (now, rate, lines, bytes) = (self.now.mono, limits.flood, limits.recvq_lines, limits.recvq_bytes);
        let Some(client) = self.clients.get_mut(&conn) else { return };
        client.last_active = now;
        client.ping_sent = None;
        if !client.must_queue() && client.flood.take(now, rate, base_cost(&parsed)).is_ok() {
            self.run_line(conn, parsed);
            return;
        }
        let recvq = &mut client.extra_mut().recvq;
        recvq.push(parsed);
        if recvq.lines.len() > lines || recvq.bytes > bytes {
            tracing::info!(%conn, ip = %client.info.ip, "dropping a flooding client: RecvQ exceeded");
            self.begin(conn, None);
            self.close(conn, "Excess flood");
            self.finish();
            return;
        }
        self.run_queued(conn);
    }

    /// Runs `conn`'s queued lines while its budget lasts.
    pub(crate) fn run_queued(&mut self, conn: ConnId) {
        let rate = self.cfg.limits.flood;
        loop {
            let now = self.now.mono;
            let Some(client) = self.clients.get_mut(&conn) else { return };
            // One of its commands waits for the edge: the rest run when it is answered
            // (`Server::complete`), in the order they came.
            if client.waiting > 0 {
                return;
            }
            // A client that quit has nothing more to say even if lines are queued.
            if !client.has_queued() || client.flood.check(now, rate).is_err() {
                if client.has_queued() {
                    self.flooding.insert(conn);
                } else {
                    // A flood that is over gives its memory back.
                    client.clear_extra(|extra| extra.recvq.lines = VecDeque::new());
                    self.flooding.remove(&conn);
                }
                return;
            }
            let Some(parsed) = client.extra_mut().recvq.pop() else { return };
            let cost = base_cost(&parsed);
            client.flood.spend(now, rate, cost);
            self.run_line(conn, parsed);
        }
    }

    /// Runs the queues of every client that was waiting for budget (from the tick).
    pub(crate) fn run_all_queued(&mut self) {
        let waiting: Vec<ConnId> = self.flooding.iter().copied().collect();
        for conn in waiting {
            self.run_queued(conn);
        }
        self.flooding.retain(|c| self.clients.contains_key(c));
    }

    /// Charges the current client `units` on top of its command's base cost.
    pub(crate) fn charge(&mut self, units: u32) {
        if units == 0 {
            return;
        }
        let (now, rate) = (self.now.mono, self.cfg.limits.flood);
        if let Some(client) = self.cur_client_mut() {
            client.flood.spend(now, rate, units);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let rate = Rate { burst: 4, every: Duration::from_secs(1) };
        let start = Instant::now();
        let mut b = Bucket::new(start);
        for _ in 0..4 {
            assert!(b.take(start, rate, 1).is_ok());
        }
        assert_eq!(b.take(start, rate, 1), Err(Duration::from_secs(1)));
        assert!(b.take(start + Duration::from_secs(1), rate, 1).is_ok());
        assert!(b.check(start + Duration::from_secs(1), rate).is_err());
        // A big charge is paid back in time, but never more than two windows of it.
        b.spend(start, rate, 1000);
        assert!(b.check(start + Duration::from_secs(5), rate).is_ok());
    }

    #[test]
    fn take_is_check_then_spend() {
        let rate = Rate { burst: 5, every: Duration::from_millis(300) };
        let start = Instant::now();
        let (mut taken, mut stepwise) = (Bucket::new(start), Bucket::new(start));
        let mut now = start;
        for i in 0u64..2000 {
            now += Duration::from_millis(i * 7919 % 400);
            let units = (i % 4) as u32;
            let expected = stepwise.check(now, rate).map(|()| stepwise.spend(now, rate, units));
            assert_eq!(taken.take(now, rate, units), expected, "step {i}");
            assert_eq!(taken.full_at, stepwise.full_at, "step {i}");
        }
    }

    #[test]
    fn a_client_holds_a_recvq_only_while_it_floods() {
        use crate::{Config, ConnId, ConnInfo, Now, Server};
        let start = Instant::now();
        let now = |secs| Now { wall_ms: 1_700_000_000_000 + secs * 1000, mono: start + Duration::from_secs(secs) };
        let mut server = Server::new(Config::default(), 1, now(0));
        let conn = ConnId(1);
        let info =
            ConnInfo { ip: "127.0.0.1".parse().expect("ip"), host: "h".into(), tls: false, quic: false, certfp: None };
        server.connect(conn, info, now(0));
        let line = |text: &str| Message::parse(text);
        server.handle(conn, line("NICK alice"), now(0));
        server.handle(conn, line("USER a 0 * :A"), now(0));
        let capacity = |server: &Server| server.clients[&conn].extra().map_or(0, |e| e.recvq.lines.capacity());
        assert_eq!(capacity(&server), 0, "commands within the budget are never queued");
        for _ in 0..50 {
            server.handle(conn, line("PING x"), now(0));
        }
        assert!(server.clients[&conn].has_queued(), "a burst beyond the budget waits");
        for secs in 1..=60 {
            server.tick(now(secs));
        }
        assert!(!server.clients[&conn].has_queued());
        assert_eq!(capacity(&server), 0, "a flood that is over gives its memory back");
        assert!(server.clients[&conn].extra().is_none(), "and the client keeps nothing aside");
    }
}
