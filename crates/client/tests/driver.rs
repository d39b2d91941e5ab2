//! The driver over a real socket, against a hand-played server on port 0: a server that stops
//! answering PINGs is declared dead and the client reconnects by itself.

use std::time::Duration;

use chinwag_client::{ClientConfig, Endpoint, Event, Keepalive, Security, SessionConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long any one expectation waits.
const WAIT: Duration = Duration::from_secs(10);

/// Reads lines until one starts with `prefix`.
async fn read_until(reader: &mut BufReader<TcpStream>, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = timeout(WAIT, reader.read_line(&mut line)).await.expect("a line in time").expect("read");
        assert!(n > 0, "the client closed the connection; it sent {lines:?}");
        let done = line.starts_with(prefix);
        lines.push(line.trim_end().to_owned());
        if done {
            return lines;
        }
    }
}

/// Waits for an event matching `pred`, returning everything seen.
async fn wait_for(events: &mut mpsc::Receiver<Event>, what: &str, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        match timeout(WAIT, events.recv()).await {
            Ok(Some(e)) => {
                let done = pred(&e);
                seen.push(e);
                if done {
                    return seen;
                }
            }
            Ok(None) => panic!("events ended while waiting for {what}: {seen:?}"),
            Err(_) => panic!("no {what} within {WAIT:?}: {seen:?}"),
        }
    }
}

/// A plaintext server on loopback at `port`.
fn plain(port: u16) -> Endpoint {
    Endpoint { host: "127.0.0.1".into(), port, security: Security::Plaintext }
}

/// alice, who joins #general, on the server at `port`, then `others`.
fn config(port: u16, others: Vec<chinwag_client::Server>, keepalive: Keepalive) -> ClientConfig {
    let session = SessionConfig {
        nick: "alice".into(),
        realname: "Alice".into(),
        credentials: None,
        server_password: None,
        passwords_allowed: true,
        rooms: vec!["general".into()],
        join_context: 0,
        keepalive,
    };
    ClientConfig {
        endpoint: plain(port),
        pinned: None,
        others,
        session,
        reconnect: true,
        known_servers: None,
        chat_log_dir: None,
        client_log: None,
        e2e_dir: None,
    }
}

#[tokio::test]
async fn a_server_that_stops_answering_is_dropped_and_the_client_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let keepalive = Keepalive { interval: Duration::from_millis(200), timeout: Duration::from_millis(600) };
    let (commands, mut events, task) = chinwag_client::start(config(port, Vec::new(), keepalive));

    let (socket, _) = timeout(WAIT, listener.accept()).await.expect("a connection in time").expect("accept");
    let mut first = BufReader::new(socket);
    let hello = read_until(&mut first, "USER").await;
    assert!(hello.contains(&"NICK alice".to_owned()), "{hello:?}");
    first.get_mut().write_all(b":srv 001 alice :Welcome\r\n").await.expect("write");
    read_until(&mut first, "JOIN #general").await;
    wait_for(&mut events, "ready", |e| matches!(e, Event::Ready { .. })).await;
    // The client pings; this server never answers, and never closes either.
    read_until(&mut first, "PING").await;
    let down = wait_for(&mut events, "the dead connection", |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(
        down.iter().any(|e| matches!(e, Event::Disconnected { reason } if reason.contains("stopped answering"))),
        "{down:?}"
    );

    let (socket, _) = timeout(WAIT, listener.accept()).await.expect("a reconnect in time").expect("accept");
    let mut second = BufReader::new(socket);
    read_until(&mut second, "USER").await;
    second.get_mut().write_all(b":srv 001 alice :Welcome back\r\n").await.expect("write");
    let rejoin = read_until(&mut second, "JOIN").await;
    assert_eq!(rejoin.last().map(String::as_str), Some("JOIN #general"));

    // Dropping the command sender is the shutdown signal: the client says QUIT and ends.
    drop(commands);
    read_until(&mut second, "QUIT").await;
    drop(second);
    wait_for(&mut events, "the end", |e| *e == Event::Closed).await;
    timeout(WAIT, task).await.expect("the driver ends").expect("the driver did not panic");
}

/// With several servers, a lost connection and then a refused one move the client along the
/// list, round and round: first → second (lost) → first again (refused: it is gone) → second.
#[tokio::test]
async fn a_lost_connection_moves_the_client_to_the_next_server_in_the_list() {
    let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let second = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = |l: &TcpListener| l.local_addr().expect("addr").port();
    let second_server = chinwag_client::Server { endpoint: plain(port(&second)), pinned: None };
    let (commands, mut events, task) =
        chinwag_client::start(config(port(&first), vec![second_server], Keepalive::default()));

    let (socket, _) = timeout(WAIT, first.accept()).await.expect("a connection in time").expect("accept");
    let mut on_first = BufReader::new(socket);
    read_until(&mut on_first, "USER").await;
    on_first.get_mut().write_all(b":one 001 alice :Welcome\r\n").await.expect("write");
    read_until(&mut on_first, "JOIN #general").await;
    wait_for(&mut events, "ready", |e| matches!(e, Event::Ready { .. })).await;
    // The first server goes away for good: its connection closes and nobody listens any more.
    drop(on_first);
    drop(first);

    let (socket, _) = timeout(WAIT, second.accept()).await.expect("the second server in time").expect("accept");
    let mut on_second = BufReader::new(socket);
    read_until(&mut on_second, "USER").await;
    on_second.get_mut().write_all(b":two 001 alice :Welcome\r\n").await.expect("write");
    let rejoin = read_until(&mut on_second, "JOIN").await;
    assert_eq!(rejoin.last().map(String::as_str), Some("JOIN #general"));
    // Lost again: the next is the first, which refuses, and then the second once more.
    drop(on_second);
    let (socket, _) = timeout(WAIT * 3, second.accept()).await.expect("back on the second in time").expect("accept");
    let mut again = BufReader::new(socket);
    read_until(&mut again, "USER").await;
    let seen = wait_for(&mut events, "the refused attempt", |e| matches!(e, Event::ConnectFailed { .. })).await;
    assert!(
        seen.iter().any(|e| matches!(e, Event::Info { text } if text.contains("trying the next server"))),
        "{seen:?}"
    );

    drop(commands);
    drop(again);
    wait_for(&mut events, "the end", |e| *e == Event::Closed).await;
    timeout(WAIT, task).await.expect("the driver ends").expect("the driver did not panic");
}
