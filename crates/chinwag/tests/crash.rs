//! Crash durability: `kill -9` the server while several clients send, restart it, and every
//! message any client saw is in history.
//!
//! The promise under test (ARCHITECTURE.md, "A message the server acknowledged is durable"): a
//! PRIVMSG's echo to its sender, and every other copy of it, leaves the server only after the
//! commit that holds it has returned. So whoever saw a message, as an echo or as a copy, can count
//! on it being in history whatever happens to the server next.
//!
//! How: [`CLIENTS`] clients join `#general` with `echo-message` and `message-tags`. Each sends
//! numbered messages from one thread, pipelined (up to [`WINDOW`] not yet echoed), while another
//! thread records every PRIVMSG it receives with its msgid. Once the clients have seen
//! [`KILL_AFTER_ECHOES`] echoes between them, the server gets SIGKILL with messages in flight.
//! Then the server is restarted on the same data directory (it must open the crashed database),
//! a fresh client reads all of `#general` with `CHATHISTORY`, the restarted server is killed
//! too, and the database is opened directly with `chinwag-store` and read again. Both readings
//! must agree, hold every message any client saw with its text, hold of each sender an unbroken
//! run of its first messages (commits are in order, so a crash can only lose a suffix), and
//! nothing else.
//!
//! The same test runs on the PostgreSQL store (`--store URL`, a fresh database from
//! `CHINWAG_TEST_POSTGRES`), read back with `PostgresStore`.
//!
//! What it shows and what it does not: SIGKILL loses what the process holds (its queues, a
//! transaction in flight) but nothing the kernel has been handed, so this checks that echoes
//! wait for the commit and that SQLite recovers its WAL after a crash. It says nothing about a
//! power cut, which is what `synchronous=FULL` is for.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpStream;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use chinwag_store::{HistoryQuery, PostgresStore, SqliteOptions, SqliteStore, Store};
use support::client::{Incoming, PlainClient};
use support::process::ServerProcess;
use support::WAIT;

const CHANNEL: &str = "#general";
/// The conversation key of `#general` in the store: its folded name.
const CONVERSATION: &str = "#general";
/// How many clients send at once.
const CLIENTS: usize = 4;
/// How many of its messages a client may have sent and not yet seen echoed. Large enough that
/// every commit has work from every client and the kill always finds messages in flight; small
/// enough that a commit never releases more lines at once than a client's SendQ holds.
const WINDOW: usize = 100;
/// Echoes seen by all clients together before the kill.
const KILL_AFTER_ECHOES: usize = 1_000;
/// A bound on each sender's loop; the kill comes long before it.
const MAX_PER_CLIENT: usize = 50_000;
/// `CHATHISTORY` returns at most this many messages per request (ISUPPORT `CHATHISTORY=100`).
const HISTORY_PAGE: usize = 100;
/// How many of each client's last lines a failure report shows.
const REPORT_LINES: usize = 15;
/// How long one read waits before a reader checks whether it should give up.
const READ_SLICE: Duration = Duration::from_millis(200);

#[test]
fn every_message_seen_before_a_kill_9_is_in_history_after_restart() {
    let dir = tempfile::tempdir().expect("create a temporary data directory");
    let path = dir.path().join(chinwag_server::DATABASE_FILE);
    crash_and_check(dir.path(), &[], &path.display().to_string(), || {
        SqliteStore::open(&path, SqliteOptions::default())
            .map(|s| Box::new(s) as Box<dyn Store>)
            .map_err(|e| e.to_string())
    });
}

/// The same on the PostgreSQL store: an echo waits for PostgreSQL's commit, and a transaction
/// the kill cut off is rolled back by PostgreSQL.
#[test]
fn every_message_seen_before_a_kill_9_is_in_postgres_after_restart() {
    let db = chinwag_store::test_db::TestDatabase::create();
    let dir = tempfile::tempdir().expect("create a temporary data directory");
    crash_and_check(dir.path(), &["--store", db.url()], db.url(), || {
        PostgresStore::open(db.url()).map(|s| Box::new(s) as Box<dyn Store>).map_err(|e| e.to_string())
    });
}

/// Runs the clients, kills the server (started with `flags` beside the usual ones), restarts it,
/// and checks history as served and as `open` reads it from `place`.
fn crash_and_check(
    data_dir: &std::path::Path,
    flags: &[&str],
    place: &str,
    open: impl Fn() -> Result<Box<dyn Store>, String>,
) {
    let started = Instant::now();
    // The clients send as fast as echoes come back, which flood control would rightly stop.
    let flags: Vec<&str> = ["--no-flood-limit"].iter().copied().chain(flags.iter().copied()).collect();
    let mut server = ServerProcess::start_with(data_dir, &["127.0.0.1:0"], &["127.0.0.1:0"], &flags);

    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let nick = nick_of(index);
        let mut client = PlainClient::plain(server.plaintext[0], &nick);
        client.request_caps("echo-message message-tags");
        client.send("CAP END");
        client.register(&nick);
        client.join(CHANNEL);
        clients.push(client);
    }

    let shared = Shared::new();
    let (killed, senders, readers) = thread::scope(|scope| {
        let mut sender_threads = Vec::new();
        let mut reader_threads = Vec::new();
        for (index, client) in clients.into_iter().enumerate() {
            let socket = client.socket().try_clone().expect("clone the socket for the sending thread");
            let shared = &shared;
            sender_threads.push(scope.spawn(move || send_messages(index, socket, shared)));
            reader_threads.push(scope.spawn(move || read_messages(index, client, shared)));
        }

        let (reached, at_kill) = shared.wait_for_echoes(KILL_AFTER_ECHOES);
        shared.lock().kill_started = true;
        let status = server.kill_9();
        {
            let mut state = shared.lock();
            state.stop = true;
            shared.changed.notify_all();
        }
        let senders: Vec<SenderReport> = sender_threads.into_iter().map(joined).collect();
        let readers: Vec<ReaderReport> = reader_threads.into_iter().map(joined).collect();
        (Killed { reached, at_kill, status }, senders, readers)
    });
    let mut report = Report { killed, senders, readers, served: Vec::new(), stored: Vec::new() };
    if !report.killed.reached {
        report.fail(&format!("the clients saw fewer than {KILL_AFTER_ECHOES} echoes within {WAIT:?}"));
    }
    report.check_clients();

    // The restarted server must open the crashed database and serve what it holds.
    let restarted = ServerProcess::start_with(data_dir, &["127.0.0.1:0"], &["127.0.0.1:0"], &flags);
    report.served = history_over_irc(&restarted, report.sent_total());
    drop(restarted);

    let mut store = open().unwrap_or_else(|e| report.fail(&format!("opening {place} after the crash failed: {e}")));
    let stored = store
        .history(CONVERSATION, &HistoryQuery::Latest { after: None }, report.sent_total() + 1)
        .unwrap_or_else(|e| report.fail(&format!("reading history from {place} failed: {e}")));
    report.stored =
        stored.into_iter().map(|m| Line { msgid: m.msgid, sender: nick_of_prefix(&m.sender), text: m.text }).collect();

    report.check_history();
    println!("{}\ntook {:.1?}", report.counts(), started.elapsed());
}

/// What the client threads share: counters the senders pace themselves by, and the stop signal.
struct Shared {
    state: Mutex<State>,
    /// Notified whenever an echo arrives and when the server has been killed.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Per client: messages written to the socket in full.
    sent: Vec<usize>,
    /// Per client: echoes of its own messages received.
    echoed: Vec<usize>,
    /// Set just before the kill: connections ending from now on end because of it.
    kill_started: bool,
    /// Set once the server is dead: senders stop.
    stop: bool,
}

impl Shared {
    fn new() -> Self {
        let state = State { sent: vec![0; CLIENTS], echoed: vec![0; CLIENTS], ..State::default() };
        Shared { state: Mutex::new(state), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits up to [`WAIT`] until the clients have seen `echoes` echoes in all. Returns whether
    /// they did and the counts at that moment.
    fn wait_for_echoes(&self, echoes: usize) -> (bool, Counts) {
        let state = self.lock();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, WAIT, |s| s.echoed.iter().sum::<usize>() < echoes)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = Counts { sent: state.sent.iter().sum(), echoed: state.echoed.iter().sum() };
        (!timeout.timed_out(), counts)
    }
}

/// Messages sent and echoes seen, over all clients.
#[derive(Clone, Copy, Debug)]
struct Counts {
    sent: usize,
    echoed: usize,
}

/// How the kill went.
struct Killed {
    /// Whether the clients saw [`KILL_AFTER_ECHOES`] echoes before it (else it came at the
    /// deadline).
    reached: bool,
    /// The counts just before it.
    at_kill: Counts,
    status: std::process::ExitStatus,
}

/// What one sending thread did.
struct SenderReport {
    sent: usize,
    /// Why it stopped.
    ended: String,
    /// Whether it stopped before the kill, which it should not.
    ended_early: bool,
}

/// What one reading thread saw.
struct ReaderReport {
    client: PlainClient,
    /// Every PRIVMSG to the channel it received, in order.
    seen: Vec<Line>,
    /// Messages of its own among them.
    echoes: usize,
    /// Why it stopped.
    ended: String,
    /// Whether the connection ended before the kill, which it should not.
    ended_early: bool,
    /// Lines that broke the rules (a channel PRIVMSG without a msgid, an ERROR).
    problems: Vec<String>,
}

/// One message to `#general`, as a client received it or as history holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    msgid: String,
    sender: String,
    text: String,
}

/// A client thread's result; its panic (already printed) fails the test.
fn joined<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|_| panic!("a client thread panicked"))
}

fn nick_of(index: usize) -> String {
    format!("sender{index}")
}

fn text_of(index: usize, seq: usize) -> String {
    format!("c{index} message {seq:06}")
}

/// The client index and sequence number of a text made by [`text_of`].
fn parse_text(text: &str) -> Option<(usize, usize)> {
    let (index, seq) = text.strip_prefix('c')?.split_once(" message ")?;
    Some((index.parse().ok()?, seq.parse().ok()?))
}

/// The nick of a `nick!user@host` prefix.
fn nick_of_prefix(prefix: &str) -> String {
    prefix.split('!').next().unwrap_or(prefix).to_owned()
}

/// Sends numbered messages until the server is killed, keeping at most [`WINDOW`] unechoed.
fn send_messages(index: usize, mut socket: TcpStream, shared: &Shared) -> SenderReport {
    let mut sent = 0;
    let ended = loop {
        if sent == MAX_PER_CLIENT {
            break format!("sent all {MAX_PER_CLIENT} messages");
        }
        {
            let state = shared.lock();
            let (state, timeout) = shared
                .changed
                .wait_timeout_while(state, WAIT, |s| !s.stop && s.sent[index].saturating_sub(s.echoed[index]) >= WINDOW)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if state.stop {
                break "stopped after the kill".to_owned();
            }
            if timeout.timed_out() {
                break format!("no echo within {WAIT:?} with {WINDOW} messages outstanding");
            }
        }
        let line = format!("PRIVMSG {CHANNEL} :{}\r\n", text_of(index, sent));
        if let Err(e) = socket.write_all(line.as_bytes()) {
            break format!("writing failed: {e}");
        }
        sent += 1;
        shared.lock().sent[index] = sent;
    };
    let ended_early = !shared.lock().kill_started;
    SenderReport { sent, ended, ended_early }
}

/// Records every PRIVMSG to the channel until the connection ends, counting own echoes.
fn read_messages(index: usize, mut client: PlainClient, shared: &Shared) -> ReaderReport {
    let nick = nick_of(index);
    let mut seen = Vec::new();
    let mut echoes = 0;
    let mut problems = Vec::new();
    let mut stopped_at: Option<Instant> = None;
    let ended = loop {
        match client.read(Instant::now() + READ_SLICE) {
            Incoming::Line(m) if m.command == "PRIVMSG" && m.params.first().is_some_and(|t| t == CHANNEL) => {
                let sender = nick_of_prefix(m.source.as_deref().unwrap_or(""));
                let text = m.params.get(1).cloned().unwrap_or_default();
                let Some(msgid) = m.tag("msgid").map(str::to_owned) else {
                    problems.push(format!("a PRIVMSG without msgid: {m:?}"));
                    continue;
                };
                if sender == nick {
                    echoes += 1;
                    shared.lock().echoed[index] = echoes;
                    shared.changed.notify_all();
                }
                seen.push(Line { msgid, sender, text });
            }
            Incoming::Line(m) if m.command == "ERROR" => problems.push(format!("ERROR from the server: {m:?}")),
            Incoming::Line(_) => {}
            Incoming::Closed => break "closed by the server".to_owned(),
            Incoming::Failed(e) => break format!("reading failed: {e}"),
            Incoming::TimedOut => {
                if shared.lock().stop {
                    let since = *stopped_at.get_or_insert_with(Instant::now);
                    if since.elapsed() > WAIT {
                        break format!("still open {WAIT:?} after the kill");
                    }
                }
            }
        }
    };
    let ended_early = !shared.lock().kill_started;
    ReaderReport { client, seen, echoes, ended, ended_early, problems }
}

/// Reads all of the channel's history from a running server with `CHATHISTORY`, oldest first.
fn history_over_irc(server: &ServerProcess, sent_total: usize) -> Vec<Line> {
    let mut client = PlainClient::plain(server.plaintext[0], "history reader");
    client.request_caps("draft/chathistory batch message-tags");
    client.send("CAP END");
    client.register("reader");
    client.join(CHANNEL);
    let messages = client.history(CHANNEL, HISTORY_PAGE, sent_total / HISTORY_PAGE + 2);
    messages
        .iter()
        .filter(|m| m.command == "PRIVMSG")
        .map(|m| {
            let Some(msgid) = m.tag("msgid").map(str::to_owned) else {
                client.fail(&format!("a history message without msgid: {m:?}"));
            };
            let sender = nick_of_prefix(m.source.as_deref().unwrap_or(""));
            Line { msgid, sender, text: m.params.get(1).cloned().unwrap_or_default() }
        })
        .collect()
}

/// Everything the test learned, and the checks on it.
struct Report {
    killed: Killed,
    senders: Vec<SenderReport>,
    readers: Vec<ReaderReport>,
    /// History as the restarted server serves it over `CHATHISTORY`, oldest first.
    served: Vec<Line>,
    /// History as the store reads it from the file, oldest first.
    stored: Vec<Line>,
}

impl Report {
    fn sent_total(&self) -> usize {
        self.senders.iter().map(|s| s.sent).sum()
    }

    fn echoed_total(&self) -> usize {
        self.readers.iter().map(|r| r.echoes).sum()
    }

    /// Every client kept going until the kill, and the kill caught messages in flight.
    fn check_clients(&self) {
        for (index, (sender, reader)) in self.senders.iter().zip(&self.readers).enumerate() {
            if sender.ended_early || reader.ended_early {
                self.fail(&format!("client {index} stopped before the kill"));
            }
            if !reader.problems.is_empty() {
                self.fail(&format!("client {index} received bad lines:\n{}", reader.problems.join("\n")));
            }
        }
        // The race under test: the kill must find messages sent and not yet acknowledged.
        if self.sent_total() <= self.echoed_total() {
            self.fail("every message sent was echoed before the kill: the kill did not race any commit");
        }
    }

    /// History read both ways agrees, holds everything seen, and nothing that was not sent.
    fn check_history(&self) {
        if self.served != self.stored {
            let at = self
                .served
                .iter()
                .zip(&self.stored)
                .position(|(a, b)| a != b)
                .unwrap_or(self.served.len().min(self.stored.len()));
            self.fail(&format!(
                "CHATHISTORY on the restarted server ({} messages) and the store ({}) disagree from message {at}: \
                 served {:?}, stored {:?}",
                self.served.len(),
                self.stored.len(),
                self.served.get(at),
                self.stored.get(at)
            ));
        }
        let stored: HashMap<&str, &Line> = self.stored.iter().map(|l| (l.msgid.as_str(), l)).collect();
        if stored.len() != self.stored.len() {
            self.fail("the store holds a msgid twice");
        }
        // Keyed by msgid: one line per message, however many clients saw it.
        let mut missing = BTreeMap::new();
        for reader in &self.readers {
            for line in &reader.seen {
                let held = stored.get(line.msgid.as_str());
                if held != Some(&line) {
                    let name = &reader.client.name;
                    missing.entry(&line.msgid).or_insert_with(|| format!("{name} saw {line:?}; history: {held:?}"));
                }
            }
        }
        if !missing.is_empty() {
            let shown = missing.values().take(20).cloned().collect::<Vec<_>>().join("\n");
            self.fail(&format!("{} messages seen before the crash are not in history, e.g.:\n{shown}", missing.len()));
        }

        // Of each sender, history holds exactly its first k messages: commits are in order and
        // nothing seen is lost, so a crash can only cut off the end.
        let mut next_seq = [0; CLIENTS];
        let mut texts = HashSet::new();
        for line in &self.stored {
            let parsed = parse_text(&line.text).filter(|&(index, _)| index < CLIENTS && line.sender == nick_of(index));
            let Some((index, seq)) = parsed else {
                self.fail(&format!("history holds a message nobody sent: {line:?}"))
            };
            if !texts.insert(&line.text) {
                self.fail(&format!("history holds a message twice: {line:?}"));
            }
            if seq != next_seq[index] || seq >= self.senders[index].sent {
                self.fail(&format!(
                    "history of {} jumps to {line:?}; expected message {}",
                    nick_of(index),
                    next_seq[index]
                ));
            }
            next_seq[index] += 1;
        }
    }

    fn counts(&self) -> String {
        let seen: HashSet<&str> = self.readers.iter().flat_map(|r| r.seen.iter().map(|l| l.msgid.as_str())).collect();
        let echoed: HashSet<&str> = self
            .readers
            .iter()
            .flat_map(|r| r.seen.iter().filter(|l| l.sender == r.client.name).map(|l| l.msgid.as_str()))
            .collect();
        let stored_not_echoed = self.stored.iter().filter(|l| !echoed.contains(l.msgid.as_str())).count();
        let mut out = format!(
            "crash test: sent {}, echoed {}, seen by anyone {}, stored {} (served over CHATHISTORY {}); \
             stored but never echoed {}, lost (sent, never echoed, not stored) {}; \
             at the kill: sent {}, echoed {}; server ended with {}\n",
            self.sent_total(),
            self.echoed_total(),
            seen.len(),
            self.stored.len(),
            self.served.len(),
            stored_not_echoed,
            self.sent_total() - self.stored.len().min(self.sent_total()),
            self.killed.at_kill.sent,
            self.killed.at_kill.echoed,
            self.killed.status,
        );
        for (sender, reader) in self.senders.iter().zip(&self.readers) {
            let _ = writeln!(
                out,
                "  {}: sent {}, echoed {}, received {} in all; sending: {}; reading: {}",
                reader.client.name,
                sender.sent,
                reader.echoes,
                reader.seen.len(),
                sender.ended,
                reader.ended
            );
        }
        out
    }

    fn fail(&self, why: &str) -> ! {
        let transcripts = self.readers.iter().fold(String::new(), |mut out, r| {
            let _ = write!(out, "{}'s last lines:\n{}", r.client.name, r.client.transcript_tail(REPORT_LINES));
            out
        });
        panic!("{why}\n{}\n{transcripts}", self.counts());
    }
}
