//! draft/multiline in the client's session, lines in and events out: the capability is asked
//! for, and a batch (live, or inside a chathistory batch) becomes one message of several lines.

use std::time::Instant;

use chinwag_client::{Event, Session, SessionConfig};
use chinwag_proto::Message;

fn session(now: Instant) -> Session {
    let cfg = SessionConfig {
        nick: "alice".into(),
        realname: "Alice".into(),
        credentials: None,
        server_password: None,
        passwords_allowed: true,
        rooms: vec![],
        join_context: 0,
        keepalive: Default::default(),
    };
    let mut s = Session::new(cfg);
    s.connected(now);
    feed(&mut s, now, &[":srv CAP * LS :server-time message-tags batch echo-message draft/multiline=max-bytes=4096"]);
    let sent: Vec<String> = std::iter::from_fn(|| s.poll_send()).map(|m| m.to_line()).collect();
    let req = sent.iter().find(|l| l.starts_with("CAP REQ")).expect("a CAP REQ");
    assert!(req.contains("draft/multiline"), "{req}");
    feed(&mut s, now, &[":srv CAP alice ACK :server-time message-tags batch echo-message draft/multiline"]);
    feed(&mut s, now, &[":srv 001 alice :Welcome"]);
    std::iter::from_fn(|| s.poll_send()).for_each(drop);
    std::iter::from_fn(|| s.poll_event()).for_each(drop);
    s
}

fn feed(s: &mut Session, now: Instant, lines: &[&str]) {
    for line in lines {
        s.receive(Message::parse(line).expect("test lines parse"), now);
    }
}

fn messages(s: &mut Session) -> Vec<chinwag_client::ChatMessage> {
    std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_multiline_batch_is_one_message_of_several_lines() {
    let now = Instant::now();
    let mut s = session(now);
    feed(
        &mut s,
        now,
        &[
            "@msgid=m1;time=2026-12-05T10:00:00.000Z :bob!b@h BATCH +7 draft/multiline #general",
            "@batch=7 :bob!b@h PRIVMSG #general :hello",
            "@batch=7 :bob!b@h PRIVMSG #general :how is ",
        ],
    );
    assert!(messages(&mut s).is_empty(), "nothing is shown before the batch ends");
    feed(
        &mut s,
        now,
        &[
            "@batch=7;draft/multiline-concat :bob!b@h PRIVMSG #general :everyone?",
            "@batch=7 :bob!b@h PRIVMSG #general :",
            "BATCH -7",
        ],
    );
    let got = messages(&mut s);
    assert_eq!(got.len(), 1, "{got:#?}");
    let m = &got[0];
    assert_eq!(m.text, "hello\nhow is everyone?\n");
    assert_eq!((m.from.as_str(), m.conversation.as_str()), ("bob", "#general"));
    assert_eq!(m.msgid.as_deref(), Some("m1"));
    assert_eq!(m.time, "2026-12-05T10:00:00.000Z");
    assert!(!m.history);

    // Scriptable mode prints its lines under the first, indented past the header.
    let lines = Event::Message(m.clone()).plain_lines();
    assert_eq!(lines[0], "[10:00] [#general] <bob> hello");
    assert_eq!(lines[1].trim_start(), "how is everyone?");
    assert_eq!(lines[1].len() - lines[1].trim_start().len(), "[10:00] [#general] <bob> ".len());
}

#[test]
fn a_multiline_message_in_history_is_one_history_message() {
    let now = Instant::now();
    let mut s = session(now);
    feed(
        &mut s,
        now,
        &[
            ":srv BATCH +h chathistory #general",
            "@batch=h;msgid=x1;time=2026-12-05T09:00:00.000Z :bob!b@h BATCH +m draft/multiline #general",
            "@batch=m :bob!b@h NOTICE #general :first",
            "@batch=m :bob!b@h NOTICE #general :second",
            "@batch=h :srv BATCH -m",
            "@batch=h;msgid=x2;time=2026-12-05T09:01:00.000Z :carol!c@h PRIVMSG #general :single",
            ":srv BATCH -h",
        ],
    );
    let got = messages(&mut s);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].text, "first\nsecond");
    assert_eq!(got[0].kind, chinwag_client::MessageKind::Notice);
    assert!(got[0].history && got[1].history);
    assert_eq!(got[0].msgid.as_deref(), Some("x1"));
    assert_eq!(got[1].text, "single");

    // The same message again (a later page that overlaps) is not shown twice.
    feed(
        &mut s,
        now,
        &[
            "@msgid=x1 :bob!b@h BATCH +again draft/multiline #general",
            "@batch=again :bob!b@h NOTICE #general :first",
            "BATCH -again",
        ],
    );
    assert!(messages(&mut s).is_empty());
}
