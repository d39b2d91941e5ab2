//! A bot as bots are written: its whole session in one write (CAP, NICK, USER, SASL, CAP END,
//! JOINs, PRIVMSGs, WHO, NAMES of two rooms, PART, QUIT), over a real socket. Every reply must come, in the
//! order of the commands, and the others must see what it said, in order too: the server may
//! hold a client's later lines (a password check, the flood budget) but never reorder or drop
//! them.

mod support;

use base64::Engine;
use chinwag_proto::Message;
use support::{start_server, Client};

/// What one expected line looks like, with a name for the failure message.
type Expect = (&'static str, fn(&Message) -> bool);

/// Checks that `lines` hold a line matching each of `expected`, in that order.
#[track_caller]
fn in_order(who: &str, lines: &[Message], expected: &[Expect]) {
    let mut rest = lines.iter();
    for (what, matches) in expected {
        assert!(
            rest.any(matches),
            "{who}: no {what} after the previous ones; got {:#?}",
            lines.iter().map(Message::to_line).collect::<Vec<_>>()
        );
    }
}

fn numeric(m: &Message, code: &str) -> bool {
    m.command == code
}

/// Reads `c` until it has seen a line matching `last` and returns everything read.
async fn read_until(c: &mut Client, last: fn(&Message) -> bool) -> Vec<Message> {
    let mut lines = Vec::new();
    loop {
        let m = c.next().await.unwrap_or_else(|| panic!("{}: closed; saw {:#?}", c.name, c.seen));
        let done = last(&m);
        lines.push(m);
        if done {
            return lines;
        }
    }
}

async fn pipelined_bot(sasl: bool) {
    let (server, _dir) = start_server(|_| {}).await;
    let addr = server.plaintext[0];
    if sasl {
        // The account the bot logs in to (plaintext is allowed on loopback).
        let mut owner = Client::plain(addr, "owner").await;
        owner.send_raw(b"NICK botty\r\nREGISTER * * botty-password\r\n").await;
        owner.expect_command("900").await;
        owner.send("QUIT").await;
        owner.expect_closed().await;
    }
    let mut wendy = Client::plain(addr, "wendy").await;
    wendy.register("wendy").await;
    wendy.join("#bots").await;
    wendy.join("#lab").await;

    let login = if sasl {
        let b64 = base64::engine::general_purpose::STANDARD.encode("\0botty\0botty-password");
        format!("AUTHENTICATE PLAIN\r\nAUTHENTICATE {b64}\r\n")
    } else {
        String::new()
    };
    let caps = if sasl { "sasl multi-prefix" } else { "multi-prefix" };
    let session = format!(
        "CAP LS 302\r\nCAP REQ :{caps}\r\nNICK botty\r\nUSER botty 0 * :Botty the bot\r\n{login}CAP END\r\n\
         JOIN #bots,#lab\r\nPRIVMSG #bots :hello bots\r\nPRIVMSG wendy :hello wendy\r\nWHO #bots\r\n\
         NAMES #bots,#lab\r\nPART #lab :done here\r\nPRIVMSG #bots :bye\r\nQUIT :all done\r\n"
    );
    let mut bot = Client::plain(addr, "botty").await;
    bot.send_raw(session.as_bytes()).await;
    let lines = bot.expect_closed().await;

    let mut expected: Vec<Expect> = vec![
        ("CAP LS", |m| m.command == "CAP" && m.params.get(1).is_some_and(|p| p == "LS")),
        ("CAP ACK", |m| m.command == "CAP" && m.params.get(1).is_some_and(|p| p == "ACK")),
    ];
    if sasl {
        expected.extend([
            ("AUTHENTICATE +", (|m| m.command == "AUTHENTICATE" && m.params == ["+"]) as fn(&Message) -> bool),
            ("900", |m| numeric(m, "900") && m.params.get(2).is_some_and(|a| a == "botty")),
            ("903", |m| numeric(m, "903")),
        ]);
    }
    expected.extend([
        ("001", (|m| numeric(m, "001")) as fn(&Message) -> bool),
        ("005", |m| numeric(m, "005")),
        ("end of MOTD", |m| numeric(m, "376") || numeric(m, "422")),
        ("JOIN #bots", |m| m.command == "JOIN" && m.params[0] == "#bots"),
        ("366 #bots", |m| numeric(m, "366") && m.params[1] == "#bots"),
        ("JOIN #lab", |m| m.command == "JOIN" && m.params[0] == "#lab"),
        ("366 #lab", |m| numeric(m, "366") && m.params[1] == "#lab"),
        ("352 wendy", |m| numeric(m, "352") && m.params[5] == "wendy"),
        ("315 #bots", |m| numeric(m, "315") && m.params[1] == "#bots"),
        ("353 #bots", |m| numeric(m, "353") && m.params[2] == "#bots" && m.params[3].contains("botty")),
        ("366 #bots for NAMES", |m| numeric(m, "366") && m.params[1] == "#bots"),
        ("353 #lab", |m| numeric(m, "353") && m.params[2] == "#lab" && m.params[3].contains("@wendy")),
        ("366 #lab for NAMES", |m| numeric(m, "366") && m.params[1] == "#lab"),
        ("PART #lab", |m| m.command == "PART" && m.params[0] == "#lab"),
        ("ERROR", |m| m.command == "ERROR"),
    ]);
    in_order("botty", &lines, &expected);
    let refusals: Vec<String> = lines
        .iter()
        .filter(|m| m.command.len() == 3 && m.command.starts_with(['4', '5']) || m.command == "FAIL")
        .map(Message::to_line)
        .collect();
    assert!(refusals.is_empty(), "the bot's session drew errors: {refusals:#?}");

    let seen = read_until(&mut wendy, |m| m.command == "QUIT").await;
    in_order(
        "wendy",
        &seen,
        &[
            ("botty's JOIN #bots", |m| m.command == "JOIN" && m.params[0] == "#bots"),
            ("botty's JOIN #lab", |m| m.command == "JOIN" && m.params[0] == "#lab"),
            ("hello bots", |m| m.command == "PRIVMSG" && m.params == ["#bots", "hello bots"]),
            ("hello wendy", |m| m.command == "PRIVMSG" && m.params == ["wendy", "hello wendy"]),
            ("PART #lab", |m| m.command == "PART" && m.params[0] == "#lab"),
            ("bye", |m| m.command == "PRIVMSG" && m.params == ["#bots", "bye"]),
            ("QUIT", |m| m.command == "QUIT" && m.params.first().is_some_and(|r| r.contains("all done"))),
        ],
    );
    assert!(seen
        .iter()
        .filter(|m| m.source.is_some())
        .all(|m| m.source.as_deref().is_some_and(|s| s.starts_with("botty!"))));
    server.shutdown().await;
}

#[tokio::test]
async fn a_bot_that_pipelines_its_whole_session_gets_every_reply_in_order() {
    pipelined_bot(false).await;
}

#[tokio::test]
async fn a_bot_that_pipelines_its_whole_session_with_sasl_gets_every_reply_in_order() {
    pipelined_bot(true).await;
}
