//! Modern IRCv3 that clients already use (issue #20): bot mode, STATUSMSG, extended-monitor,
//! ban and invite exceptions, the account extban, ELIST filters.

mod support;

use chinwag_core::Response;
use support::{expect, find, parsed, Harness};

/// The ISUPPORT tokens of a fresh registration.
fn isupport(h: &mut Harness) -> Vec<String> {
    let conn = h.connect();
    h.send(conn, "NICK probe");
    h.send(conn, "USER probe 0 * :probe");
    let lines = h.take(conn);
    parsed(&lines).into_iter().filter(|m| m.command == "005").flat_map(|m| m.params).collect()
}

#[test]
fn bot_mode_is_announced_set_by_oneself_and_shown_everywhere() {
    let mut h = Harness::new();
    assert!(isupport(&mut h).iter().any(|t| t == "BOT=B"), "ISUPPORT BOT=B");
    let bot = h.register_with_caps("helper", "message-tags");
    let watcher = h.register_with_caps("watcher", "message-tags");
    let plain = h.register("plain");
    for c in [bot, watcher, plain] {
        h.send(c, "JOIN #room");
    }
    h.clear(&[bot, watcher, plain]);

    h.send(bot, "MODE helper +B");
    assert_eq!(expect(&h.take(bot), "MODE").params, ["helper", "+B"]);
    h.send(bot, "MODE helper");
    assert_eq!(expect(&h.take(bot), "221").params, ["helper", "+B"]);
    h.send(watcher, "MODE helper +B");
    expect(&h.take(watcher), "502");

    h.send(watcher, "WHOIS helper");
    let whois = expect(&h.take(watcher), "335");
    assert_eq!(whois.params, ["watcher", "helper", "is a bot"]);
    h.send(watcher, "WHOIS plain");
    assert!(find(&h.take(watcher), "335").is_none(), "plain is no bot");

    h.send(watcher, "WHO #room");
    let rows: Vec<_> = parsed(&h.take(watcher)).into_iter().filter(|m| m.command == "352").collect();
    let flags = |nick: &str| rows.iter().find(|m| m.params[5] == nick).map(|m| m.params[6].clone());
    assert_eq!(flags("helper").as_deref(), Some("H@B"), "helper made the room");
    assert_eq!(flags("plain").as_deref(), Some("H"));

    h.send(bot, "PRIVMSG #room :beep");
    let tagged = expect(&h.take(watcher), "PRIVMSG");
    assert!(tagged.tags.iter().any(|t| t.key == "bot" && t.value.is_empty()), "bot tag: {tagged:?}");
    let untagged = h.take(plain);
    assert!(untagged.iter().all(|l| !l.starts_with('@')), "no tags without message-tags: {untagged:?}");
    h.send(watcher, "PRIVMSG #room :human");
    let human = expect(&h.take(bot), "PRIVMSG");
    assert!(human.tags.iter().all(|t| t.key != "bot"), "a human's message has no bot tag");

    h.send(bot, "MODE helper -B");
    assert_eq!(expect(&h.take(bot), "MODE").params, ["helper", "-B"]);
    h.send(bot, "PRIVMSG #room :off duty");
    let after = expect(&h.take(watcher), "PRIVMSG");
    assert!(after.tags.iter().all(|t| t.key != "bot"), "-B: no bot tag");
}

#[test]
fn statusmsg_reaches_only_members_with_that_status() {
    let mut h = Harness::new();
    let tokens = isupport(&mut h);
    assert!(tokens.iter().any(|t| t == "STATUSMSG=@+"), "ISUPPORT STATUSMSG=@+: {tokens:?}");
    let op = h.register_with_caps("olga", "echo-message");
    let voiced = h.register("vera");
    let member = h.register("mia");
    let other_op = h.register("otto");
    for c in [op, voiced, member, other_op] {
        h.send(c, "JOIN #room");
    }
    h.send(op, "MODE #room +vo vera otto");
    h.clear(&[op, voiced, member, other_op]);

    h.send(voiced, "PRIVMSG @#room :ops only");
    let to_op = expect(&h.take(other_op), "PRIVMSG");
    assert_eq!(to_op.params, ["@#room", "ops only"]);
    assert!(to_op.source.as_deref().is_some_and(|s| s.starts_with("vera!")));
    assert_eq!(expect(&h.take(op), "PRIVMSG").params, ["@#room", "ops only"]);
    assert!(h.take(member).is_empty(), "a plain member does not see @#room");
    assert!(h.take(voiced).is_empty(), "no echo without echo-message");

    h.send(op, "NOTICE +#room :voice and up");
    assert_eq!(expect(&h.take(voiced), "NOTICE").params, ["+#room", "voice and up"]);
    assert_eq!(expect(&h.take(other_op), "NOTICE").params, ["+#room", "voice and up"]);
    assert_eq!(expect(&h.take(op), "NOTICE").params, ["+#room", "voice and up"], "echo-message");
    assert!(h.take(member).is_empty());
    assert!(h.persisted.is_empty(), "a status message is not kept in the room's history");

    let outsider = h.register("ozzy");
    h.send(outsider, "PRIVMSG @#room :let me in");
    assert_eq!(expect(&h.take(outsider), "404").params[1], "#room");
    assert!(h.take(other_op).is_empty(), "+n holds for status messages too");
    h.send(outsider, "PRIVMSG @#nowhere :x");
    expect(&h.take(outsider), "403");
}

#[test]
fn extended_monitor_watchers_hear_of_away_and_setname_as_peers_do() {
    let mut h = Harness::new();
    let watcher = h.register_with_caps("wendy", "extended-monitor away-notify setname account-notify");
    let old_style = h.register_with_caps("otis", "away-notify setname");
    let no_away = h.register_with_caps("nora", "extended-monitor");
    let peer = h.register_with_caps("pat", "extended-monitor away-notify");
    let target = h.register("tara");
    h.send(peer, "JOIN #room");
    h.send(target, "JOIN #room");
    for w in [watcher, old_style, no_away, peer] {
        h.send(w, "MONITOR + tara");
    }
    h.clear(&[watcher, old_style, no_away, peer, target]);

    h.send(target, "AWAY :lunch");
    let away = expect(&h.take(watcher), "AWAY");
    assert_eq!(away.params, ["lunch"]);
    assert!(away.source.as_deref().is_some_and(|s| s.starts_with("tara!")));
    assert!(h.take(old_style).is_empty(), "MONITOR alone does not carry AWAY");
    assert!(h.take(no_away).is_empty(), "extended-monitor without away-notify");
    let peer_lines = h.take(peer);
    assert_eq!(peer_lines.iter().filter(|l| l.contains(" AWAY ")).count(), 1, "once: {peer_lines:?}");

    h.send(target, "SETNAME :Tara T");
    assert_eq!(expect(&h.take(watcher), "SETNAME").params, ["Tara T"]);
    assert!(h.take(old_style).is_empty());

    h.send(target, "NS IDENTIFY tara tarapassword");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("tara".into())));
    assert_eq!(expect(&h.take(watcher), "ACCOUNT").params, ["tara"]);
    assert!(h.take(old_style).is_empty());

    h.send(watcher, "MONITOR - tara");
    h.clear(&[watcher]);
    h.send(target, "AWAY");
    assert!(h.take(watcher).is_empty(), "no longer monitored");
}

/// Logs `conn` in to `account` through NickServ, answering the password check.
fn log_in(h: &mut Harness, conn: chinwag_core::ConnId, account: &str) {
    h.send(conn, &format!("NS IDENTIFY {account} password"));
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok(account.into())));
    h.take(conn);
}

#[test]
fn ban_and_invite_exceptions_and_the_account_extban_apply_to_join_and_speaking() {
    let mut h = Harness::new();
    let tokens = isupport(&mut h);
    for token in ["CHANMODES=beI,k,l,imnst", "EXCEPTS=e", "INVEX=I", "EXTBAN=$,a"] {
        assert!(tokens.iter().any(|t| t == token), "ISUPPORT {token}: {tokens:?}");
    }
    let op = h.register("olga");
    let kate = h.register("kate");
    let guest = h.register("gus");
    let mallory = h.register("mallory");
    log_in(&mut h, kate, "kate");
    h.send(op, "JOIN #club");
    h.clear(&[op]);

    // Everyone on this host is banned, but kate's account is excepted.
    h.send(op, "MODE #club +be *!*@127.0.0.1 $a:KATE");
    assert_eq!(expect(&h.take(op), "MODE").params, ["#club", "+be", "*!*@127.0.0.1", "$a:KATE"]);
    let saved = h.saved_rooms.last().expect("saved");
    assert_eq!(saved.excepts.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["$a:KATE"]);
    h.send(guest, "JOIN #club");
    assert_eq!(expect(&h.take(guest), "474").params[1], "#club");
    h.send(kate, "JOIN #club");
    expect(&h.take(kate), "JOIN");

    // The exception holds for speaking too, while a banned member is silenced.
    h.send(op, "MODE #club -b *!*@127.0.0.1");
    h.send(mallory, "JOIN #club");
    h.send(op, "MODE #club +b $a:kate");
    h.clear(&[op, kate, mallory]);
    h.send(kate, "PRIVMSG #club :still here");
    assert_eq!(expect(&h.take(mallory), "PRIVMSG").params, ["#club", "still here"], "excepted");
    h.send(op, "MODE #club -e $a:KATE");
    h.clear(&[op, kate, mallory]);
    h.send(kate, "PRIVMSG #club :and now?");
    assert_eq!(expect(&h.take(kate), "404").params[1], "#club");
    assert!(h.take(mallory).is_empty());
    h.send(op, "MODE #club -b $a:kate");

    // +I lets whoever it names past +i; `$~a` names those not logged in.
    h.send(op, "MODE #club +i");
    h.send(op, "MODE #club +I $~a");
    h.clear(&[op]);
    h.send(guest, "JOIN #club");
    expect(&h.take(guest), "JOIN");
    h.send(kate, "PART #club");
    h.send(kate, "JOIN #club");
    assert_eq!(expect(&h.take(kate), "473").params[1], "#club", "kate is logged in");

    // The lists: 348/349 and 346/347, for operators.
    h.send(op, "MODE #club eI");
    let lines = h.take(op);
    assert_eq!(expect(&lines, "349").params[1], "#club");
    assert_eq!(expect(&lines, "346").params[1..3], ["#club".to_owned(), "$~a".to_owned()]);
    expect(&lines, "347");
    h.send(guest, "MODE #club I");
    expect(&h.take(guest), "482");
    h.send(op, "MODE #club +b $x:nonsense");
    assert!(find(&h.take(op), "MODE").is_none(), "an unknown extban is not set");
}

#[test]
fn list_filters_by_users_name_creation_and_topic_time() {
    let mut h = Harness::with_config(chinwag_core::Config { default_channels: Vec::new(), ..Default::default() });
    assert!(isupport(&mut h).iter().any(|t| t == "ELIST=CMNTU"), "ISUPPORT ELIST=CMNTU");
    let a = h.register("alice");
    let b = h.register("bob");
    let c = h.register("carol");
    h.send(a, "JOIN #old");
    h.send(a, "TOPIC #old :ancient");
    h.advance(std::time::Duration::from_secs(30 * 60));
    for conn in [a, b, c] {
        h.send(conn, "JOIN #rust-busy");
    }
    h.send(b, "JOIN #rust-quiet");
    h.send(b, "TOPIC #rust-quiet :fresh");
    h.clear(&[a, b, c]);
    let list = |h: &mut Harness, filter: &str| -> Vec<String> {
        h.send(c, &format!("LIST {filter}"));
        parsed(&h.take(c)).into_iter().filter(|m| m.command == "322").map(|m| m.params[1].clone()).collect()
    };
    assert_eq!(list(&mut h, ">2"), ["#rust-busy"]);
    assert_eq!(list(&mut h, "<2"), ["#old", "#rust-quiet"]);
    assert_eq!(list(&mut h, "#RUST-*"), ["#rust-busy", "#rust-quiet"]);
    assert_eq!(list(&mut h, "#rust-*,!*quiet"), ["#rust-busy"]);
    assert_eq!(list(&mut h, "#old,#rust-quiet"), ["#old", "#rust-quiet"], "names as before");
    assert_eq!(list(&mut h, "C>10"), ["#old"]);
    assert_eq!(list(&mut h, "C<10"), ["#rust-busy", "#rust-quiet"]);
    assert_eq!(list(&mut h, "T<10"), ["#rust-quiet"], "a room without a topic passes no T filter");
    assert_eq!(list(&mut h, "T>10,<5"), ["#old"]);
}
