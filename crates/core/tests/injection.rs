//! Injection: nothing a user types can forge a line, a parameter or a tag in what another
//! client receives, and no lookalike name can pass for someone else's room or nick.
//!
//! Every line any client receives here is checked the same way: no CR, LF or NUL inside, it
//! parses, it serializes back byte for byte, and relayed commands carry exactly the number of
//! parameters they should (a smuggled space in a middle parameter would add one).

mod support;

use base64::Engine;
use chinwag_core::{ConnId, Failure, Request, Response};
use chinwag_proto::Message;
use support::{expect, parsed, Harness};

/// Checks every line and returns them parsed.
#[track_caller]
fn clean(lines: &[String]) -> Vec<Message> {
    for line in lines {
        assert!(!line.contains(['\r', '\n', '\0']), "raw CR/LF/NUL in {line:?}");
        let msg = Message::parse(line).unwrap_or_else(|e| panic!("{line:?} does not parse: {e}"));
        assert_eq!(&msg.to_line(), line, "does not round-trip");
        let expected = match msg.command.as_str() {
            "KICK" => 3..=3,
            "PRIVMSG" | "NOTICE" | "TOPIC" => 2..=2,
            "QUIT" | "NICK" | "SETNAME" => 1..=1,
            "PART" | "AWAY" => 0..=2,
            "TAGMSG" => 1..=1,
            _ => 0..=15,
        };
        assert!(expected.contains(&msg.params.len()), "{} with {} params: {line:?}", msg.command, msg.params.len());
    }
    parsed(lines)
}

fn room() -> (Harness, ConnId, ConnId) {
    let mut h = Harness::new();
    let mallory = h.register_with_caps("mallory", "message-tags echo-message labeled-response");
    let victim = h.register_with_caps("victim", "message-tags away-notify setname account-tag");
    h.send(mallory, "JOIN #room");
    h.send(victim, "JOIN #room");
    h.clear(&[mallory, victim]);
    (h, mallory, victim)
}

#[test]
fn raw_cr_lf_and_nul_in_any_text_never_reach_another_client() {
    let (mut h, mallory, victim) = room();
    let attacks: [&[u8]; 9] = [
        b"PRIVMSG #room :hi\rPRIVMSG #room :forged",
        b"PRIVMSG #room :hi\0there",
        b"TOPIC #room :new\rtopic",
        b"AWAY :gone\0now",
        b"SETNAME :Real\rName",
        b"PART #room :bye\r:victim!v@h PRIVMSG #room :forged",
        b"KICK #room victim :out\0",
        b"USER x 0 * :real\rname",
        b"QUIT :see\rya",
    ];
    for attack in attacks {
        h.send_bytes(mallory, attack);
        let replies = clean(&h.take(mallory));
        let fail = replies.iter().find(|m| m.command == "FAIL");
        assert!(fail.is_some_and(|f| f.params[1] == "INVALID_MESSAGE"), "{attack:?}: {replies:#?}");
        assert!(h.take(victim).is_empty(), "the victim saw something of {attack:?}");
    }
    assert!(!h.is_closed(mallory), "a malformed line is answered, not punished by disconnection");
}

#[test]
fn every_user_text_is_relayed_as_one_parameter_of_the_right_command() {
    let (mut h, mallory, victim) = room();
    let sneaky = ":victim!v@h PRIVMSG #room :forged";
    let lines = [
        format!("PRIVMSG #room :{sneaky}"),
        format!("NOTICE #room :{sneaky}"),
        format!("TOPIC #room :{sneaky}"),
        format!("AWAY :{sneaky}"),
        format!("SETNAME :{sneaky}"),
        "AWAY".to_owned(),
        format!("KICK #room victim :{sneaky}"),
        "JOIN #room".to_owned(),
        format!("PART #room :{sneaky}"),
    ];
    for line in &lines {
        let sender = if line == "JOIN #room" { victim } else { mallory };
        h.send(sender, line);
        clean(&h.take(mallory));
    }
    let got = clean(&h.take(victim));
    let commands: Vec<&str> = got.iter().map(|m| m.command.as_str()).collect();
    for command in ["PRIVMSG", "NOTICE", "TOPIC", "AWAY", "SETNAME", "PART", "KICK"] {
        assert!(commands.contains(&command), "the victim never saw {command}: {commands:?}");
    }
    for m in &got {
        if let Some(text) = m.params.last().filter(|p| p.contains("forged")) {
            assert_eq!(text.as_str(), sneaky, "the text arrives whole as the last parameter: {m:?}");
            let numeric = m.command.bytes().all(|b| b.is_ascii_digit());
            assert!(numeric || m.source.as_deref().is_some_and(|s| s.starts_with("mallory!")), "{m:?}");
        }
    }
}

#[test]
fn escaped_cr_lf_in_tag_values_stay_escaped_when_relayed() {
    let (mut h, mallory, victim) = room();
    h.send(mallory, r"@+draft/reply=a\r\nQUIT\s:x;+example/y=\:semi\\;label=l\r\n1 TAGMSG #room");
    let got = clean(&h.take(victim));
    let tagmsg = got.iter().find(|m| m.command == "TAGMSG").expect("relayed to the victim");
    assert_eq!(tagmsg.tag("+draft/reply"), Some("a\r\nQUIT :x"), "{tagmsg:?}");
    assert_eq!(tagmsg.tag("+example/y"), Some(";semi\\"));
    assert_eq!(tagmsg.tag("label"), None, "a label is only for the sender");
    let mine = clean(&h.take(mallory));
    let echo = mine.iter().find(|m| m.command == "TAGMSG").expect("echo");
    assert_eq!(echo.tag("label"), Some("l\r\n1"), "the label comes back, escaped: {echo:?}");
}

#[test]
fn an_account_name_with_line_breaks_from_sasl_goes_nowhere() {
    let mut h = Harness::new();
    let witness = h.register("witness");
    let c = h.connect();
    h.send(c, "CAP LS 302");
    h.send(c, "CAP REQ :sasl");
    h.send(c, "NICK mallory");
    h.send(c, "USER mallory 0 * :m");
    h.send(c, "AUTHENTICATE PLAIN");
    let payload = "\0victim\r\nPRIVMSG witness :forged\0password";
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    h.send(c, &format!("AUTHENTICATE {b64}"));
    let (id, req) = h.next_request();
    assert!(matches!(&req, Request::CheckPassword { account, .. } if account.contains('\n')), "{req:?}");
    h.respond(id, Response::Account(Err(Failure::NoSuchAccount)));
    let replies = clean(&h.take(c));
    assert!(replies.iter().any(|m| m.command == "904"), "{replies:#?}");
    assert!(replies.iter().all(|m| !m.to_line().contains("forged")), "the name is never echoed: {replies:#?}");
    assert!(h.take(witness).is_empty());
}

#[test]
fn lookalike_room_names_are_refused_and_honest_ones_are_not() {
    let mut h = Harness::new();
    let alice = h.register("alice");
    for lookalike in ["#general\u{200b}", "#g\u{0435}neral", "#\u{202e}lareneg"] {
        h.send(alice, &format!("JOIN {lookalike}"));
        let lines = clean(&h.take(alice));
        let refusal = lines.iter().find(|m| m.command == "479");
        assert!(refusal.is_some_and(|m| m.params[2].contains("Illegal channel name")), "{lookalike:?}: {lines:#?}");
        assert!(!lines.iter().any(|m| m.command == "JOIN"), "{lookalike:?} was created");
    }
    for honest in ["#café", "#общий", "#GENERAL"] {
        h.send(alice, &format!("JOIN {honest}"));
        let lines = clean(&h.take(alice));
        assert!(lines.iter().any(|m| m.command == "JOIN"), "{honest:?}: {lines:#?}");
    }
}

#[test]
fn nicks_that_differ_only_by_case_or_by_lookalike_letters_cannot_be_taken() {
    let mut h = Harness::new();
    let _alice = h.register("alice");
    let c = h.connect();
    h.send(c, "NICK ALICE");
    assert!(expect(&h.take(c), "433").params[1] == "ALICE", "case does not make a new nick");
    h.send(c, "NICK \u{0430}lice");
    expect(&h.take(c), "432");
    h.send(c, "NICK alice\u{200b}");
    expect(&h.take(c), "432");
    h.send(c, "NICK NickServ");
    expect(&h.take(c), "432");
}

#[test]
fn replies_that_echo_a_trailing_parameter_keep_their_shape() {
    let mut h = Harness::new();
    let c = h.connect();
    for (line, code) in [
        ("CAP :bob way ", "410"),
        ("NICK :a b c", "432"),
        ("NICK ::colon", "432"),
        ("PRIVMSG :no such :nick here", "451"),
    ] {
        h.send(c, line);
        let replies = clean(&h.take(c));
        let reply = replies.iter().find(|m| m.command == code).unwrap_or_else(|| panic!("{line}: {replies:#?}"));
        assert!(reply.params.len() <= 3, "{line}: {reply:?}");
    }
    h.send(c, "NICK alice");
    h.send(c, "USER alice 0 * :Alice");
    h.take(c);
    h.send(c, "WHOIS :bob carol");
    let replies = clean(&h.take(c));
    let reply = replies.iter().find(|m| m.command == "401").unwrap_or_else(|| panic!("{replies:#?}"));
    assert_eq!(reply.params.len(), 3, "{reply:?}");
}
