//! Room moderation: user and channel MODE, KICK, INVITE.

mod support;

use chinwag_core::{Config, Limits};
use support::{expect, find, parsed, Harness};

/// alice runs `#rust` (she created it, so she is its operator); the others are plain members.
fn room(h: &mut Harness, members: &[&str]) -> Vec<chinwag_core::ConnId> {
    let conns: Vec<_> = members.iter().map(|n| h.register(n)).collect();
    for c in &conns {
        h.send(*c, "JOIN #rust");
    }
    h.clear(&conns);
    conns
}

fn modes_seen(lines: &[String]) -> Vec<Vec<String>> {
    parsed(lines).into_iter().filter(|m| m.command == "MODE").map(|m| m.params).collect()
}

#[test]
fn operator_grants_and_revokes_are_seen_by_every_member() {
    let mut h = Harness::new();
    let [a, b, c] = room(&mut h, &["alice", "bob", "carol"])[..] else { unreachable!() };
    h.send(a, "MODE #rust +ov BOB carol");
    for x in [a, b, c] {
        let m = expect(&h.take(x), "MODE");
        assert!(m.source.as_deref().is_some_and(|s| s.starts_with("alice!")));
        assert_eq!(m.params, ["#rust", "+ov", "bob", "carol"], "canonical nicks, one line");
    }
    h.send(a, "MODE #rust -o+v-v bob carol carol");
    assert_eq!(modes_seen(&h.take(b)), [["#rust", "-ov", "bob", "carol"]], "only what changed");
    h.clear(&[c]);
    h.send(a, "MODE #rust +v bob");
    h.send(a, "MODE #rust +v bob");
    assert_eq!(modes_seen(&h.take(c)).len(), 1, "a change that changes nothing is not broadcast");
    h.clear(&[a, b]);
    h.send(b, "MODE #rust +o bob");
    expect(&h.take(b), "482");
    assert!(h.take(c).is_empty());
    h.send(c, "NAMES #rust");
    assert_eq!(expect(&h.take(c), "353").params[3], "@alice +bob carol");
}

#[test]
fn mode_query_shows_modes_and_creation_time_and_hides_the_key_from_outsiders() {
    let mut h = Harness::new();
    let [a] = room(&mut h, &["alice"])[..] else { unreachable!() };
    let d = h.register("dave");
    h.send(a, "MODE #rust +k-t+l sesame 5");
    assert_eq!(modes_seen(&h.take(a)), [["#rust", "+k-t+l", "sesame", "5"]]);
    h.send(a, "MODE #rust");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "324").params, ["alice", "#rust", "+nkl", "sesame", "5"]);
    assert_eq!(expect(&lines, "329").params, ["alice", "#rust", "1795269772"]);
    h.send(d, "MODE #RUST");
    assert_eq!(expect(&h.take(d), "324").params, ["dave", "#rust", "+nkl", "*", "5"]);
    h.send(d, "MODE #nowhere");
    expect(&h.take(d), "403");
}

#[test]
fn moderated_room_silences_the_unvoiced() {
    let mut h = Harness::new();
    let [a, b, c] = room(&mut h, &["alice", "bob", "carol"])[..] else { unreachable!() };
    h.send(a, "MODE #rust +m");
    h.clear(&[a, b, c]);
    h.send(b, "PRIVMSG #rust :can anyone hear me?");
    expect(&h.take(b), "404");
    assert!(h.take(c).is_empty());
    h.send(a, "MODE #rust +v bob");
    h.send(b, "PRIVMSG #rust :now you can");
    assert_eq!(expect(&h.take(c), "PRIVMSG").params[1], "now you can");
    h.send(a, "MODE #rust -m");
    h.send(c, "PRIVMSG #rust :me too");
    expect(&h.take(b), "PRIVMSG");
}

#[test]
fn key_limit_invite_only_and_bans_refuse_joins_with_their_numerics() {
    let mut h = Harness::new();
    let [a] = room(&mut h, &["alice"])[..] else { unreachable!() };
    let b = h.register("bob");
    let c = h.register("carol");
    let d = h.register("dave");

    h.send(a, "MODE #rust +k sesame");
    h.send(b, "JOIN #rust");
    expect(&h.take(b), "475");
    h.send(b, "JOIN #rust wrong");
    expect(&h.take(b), "475");
    h.send(b, "JOIN #rust sesame");
    expect(&h.take(b), "JOIN");
    h.send(a, "MODE #rust -k");
    assert_eq!(modes_seen(&h.take(b)), [["#rust", "-k", "sesame"]], "-k without its parameter is fine");

    h.send(a, "MODE #rust +l 2");
    h.send(c, "JOIN #rust");
    expect(&h.take(c), "471");
    h.send(a, "MODE #rust -l+i");
    h.send(c, "JOIN #rust");
    expect(&h.take(c), "473");

    h.send(a, "INVITE carol #rust");
    h.send(c, "JOIN #rust");
    expect(&h.take(c), "JOIN");
    h.send(c, "PART #rust");
    h.send(c, "JOIN #rust");
    expect(&h.take(c), "473");

    h.clear(&[a]);
    h.send(a, "MODE #rust -i+b dave");
    assert_eq!(modes_seen(&h.take(a)), [["#rust", "-i+b", "dave!*@*"]], "a bare nick becomes a full mask");
    h.send(d, "JOIN #rust");
    expect(&h.take(d), "474");
    h.send(c, "JOIN #rust");
    expect(&h.take(c), "JOIN");
}

#[test]
fn invitation_also_lifts_the_limit() {
    let mut h = Harness::new();
    let [a] = room(&mut h, &["alice"])[..] else { unreachable!() };
    let b = h.register("bob");
    h.send(a, "MODE #rust +l 1");
    h.send(b, "JOIN #rust");
    expect(&h.take(b), "471");
    h.send(a, "INVITE bob #rust");
    h.send(b, "JOIN #rust");
    expect(&h.take(b), "JOIN");
}

#[test]
fn bans_by_mask_block_joining_and_speaking_and_are_listed() {
    let mut h = Harness::new();
    let [a, b, c] = room(&mut h, &["alice", "bob", "carol"])[..] else { unreachable!() };
    h.send(a, "MODE #rust +b bob!~bob@*");
    h.send(a, "MODE #rust +b BOB!~bob@*");
    assert_eq!(modes_seen(&h.take(c)), [["#rust", "+b", "bob!~bob@*"]], "a duplicate ban is a no-op");
    h.send(b, "PRIVMSG #rust :hello?");
    expect(&h.take(b), "404");
    h.send(b, "PART #rust");
    h.send(b, "JOIN #rust");
    expect(&h.take(b), "474");

    h.send(c, "MODE #rust b");
    let lines = h.take(c);
    let ban = expect(&lines, "367");
    assert_eq!(ban.params[..3], ["carol", "#rust", "bob!~bob@*"]);
    assert_eq!(ban.params[3], "alice!~alice@127.0.0.1");
    assert_eq!(ban.params[4], "1795269772");
    expect(&lines, "368");

    h.clear(&[a]);
    h.send(a, "MODE #rust -b nobody");
    assert!(find(&h.take(a), "MODE").is_none(), "removing a ban that is not there is a no-op");
    h.send(a, "MODE #rust +b *!*@127.0.0.*");
    let d = h.register("dave");
    h.send(d, "JOIN #rust");
    expect(&h.take(d), "474");
    h.clear(&[a]);
    h.send(a, "MODE #rust -bb bob!~bob@* *!*@127.0.0.*");
    assert_eq!(modes_seen(&h.take(a)), [["#rust", "-bb", "bob!~bob@*", "*!*@127.0.0.*"]]);
    h.send(b, "JOIN #rust");
    expect(&h.take(b), "JOIN");
}

#[test]
fn ban_list_and_mode_count_have_limits() {
    let limits = Limits { bans_per_channel: 2, modes_per_command: 3, ..Limits::default() };
    let mut h = Harness::with_config(Config { limits, ..Config::default() });
    let [a] = room(&mut h, &["alice"])[..] else { unreachable!() };
    h.send(a, "MODE #rust +bbbb w x y z");
    let lines = h.take(a);
    assert_eq!(modes_seen(&lines), [["#rust", "+bb", "w!*@*", "x!*@*"]]);
    assert_eq!(expect(&lines, "478").params[1..3], ["#rust", "y!*@*"]);
    assert!(parsed(&lines).iter().filter(|m| m.command == "478").count() == 1, "z is past MODES=3");
}

#[test]
fn mode_errors_get_numerics_and_the_rest_still_applies() {
    let mut h = Harness::new();
    let [a, b] = room(&mut h, &["alice", "bob"])[..] else { unreachable!() };
    let c = h.register("carol");

    h.send(a, "MODE #rust +zmzq");
    let lines = h.take(a);
    let unknown: Vec<String> =
        parsed(&lines).into_iter().filter(|m| m.command == "472").map(|m| m.params[1].clone()).collect();
    assert_eq!(unknown, ["z", "q"], "one 472 per unknown letter");
    assert_eq!(modes_seen(&lines), [["#rust", "+m"]]);

    h.send(a, "MODE #rust +k one");
    h.send(a, "MODE #rust +k two");
    expect(&h.take(a), "467");
    h.send(a, "MODE #rust -k *");
    h.send(a, "MODE #rust +k :has space");
    expect(&h.take(a), "525");
    h.send(a, "MODE #rust +k a,b");
    expect(&h.take(a), "525");

    h.send(a, "MODE #rust +l zero");
    h.send(a, "MODE #rust +l 0");
    assert!(h.take(a).is_empty(), "a limit that is not a positive number is ignored");

    h.send(a, "MODE #rust +o carol");
    assert_eq!(expect(&h.take(a), "441").params[1..3], ["carol", "#rust"]);
    h.send(a, "MODE #rust +o nobody");
    expect(&h.take(a), "401");
    h.send(c, "MODE #rust +t");
    expect(&h.take(c), "442");
    h.send(b, "MODE #rust +n");
    expect(&h.take(b), "482");
    h.send(a, "MODE");
    expect(&h.take(a), "461");
}

#[test]
fn user_mode_invisible_only_for_oneself() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let _b = h.register("bob");
    h.send(a, "MODE alice");
    assert_eq!(expect(&h.take(a), "221").params, ["alice", "+"]);
    h.send(a, "MODE Alice +i");
    let echo = expect(&h.take(a), "MODE");
    assert_eq!(echo.params, ["alice", "+i"]);
    assert!(echo.source.as_deref().is_some_and(|s| s == "alice!~alice@127.0.0.1"));
    h.send(a, "MODE alice");
    assert_eq!(expect(&h.take(a), "221").params, ["alice", "+i"]);
    h.send(a, "MODE alice +iw");
    let lines = h.take(a);
    expect(&lines, "501");
    assert!(find(&lines, "MODE").is_none(), "already +i: nothing changed");
    h.send(a, "MODE alice -i");
    assert_eq!(expect(&h.take(a), "MODE").params, ["alice", "-i"]);
    h.send(a, "MODE bob +i");
    expect(&h.take(a), "502");
    h.send(a, "MODE bob");
    expect(&h.take(a), "502");
    h.send(a, "MODE nobody");
    expect(&h.take(a), "401");
}

#[test]
fn kick_removes_the_member_who_then_cannot_send() {
    let mut h = Harness::new();
    let [a, b, c] = room(&mut h, &["alice", "bob", "carol"])[..] else { unreachable!() };
    h.send(b, "KICK #rust alice");
    expect(&h.take(b), "482");
    h.send(a, "KICK #rust BOB :behave yourself");
    for x in [a, b, c] {
        let kick = expect(&h.take(x), "KICK");
        assert_eq!(kick.params, ["#rust", "bob", "behave yourself"]);
        assert!(kick.source.as_deref().is_some_and(|s| s.starts_with("alice!")));
    }
    h.send(b, "PRIVMSG #rust :let me back");
    expect(&h.take(b), "404");
    assert!(h.take(c).is_empty());
    h.send(c, "NAMES #rust");
    assert_eq!(expect(&h.take(c), "353").params[3], "@alice carol");

    h.send(a, "KICK #rust carol");
    assert_eq!(expect(&h.take(c), "KICK").params, ["#rust", "carol", "alice"], "default reason is the kicker");
    h.send(a, "KICK #rust bob");
    assert_eq!(expect(&h.take(a), "441").params[1..3], ["bob", "#rust"]);
    h.send(a, "KICK #rust ghost");
    expect(&h.take(a), "401");
    h.send(b, "KICK #rust alice");
    expect(&h.take(b), "442");
    h.send(a, "KICK #nowhere bob");
    expect(&h.take(a), "403");
    h.send(a, "KICK #rust");
    expect(&h.take(a), "461");
    h.send(a, "KICK #rust a,b,c,d,e");
    expect(&h.take(a), "407");
}

#[test]
fn kick_several_at_once() {
    let mut h = Harness::new();
    let [a, b, c] = room(&mut h, &["alice", "bob", "carol"])[..] else { unreachable!() };
    h.send(a, "KICK #rust bob,carol :out");
    let kicks: Vec<Vec<String>> =
        parsed(&h.take(a)).into_iter().filter(|m| m.command == "KICK").map(|m| m.params).collect();
    assert_eq!(kicks, [["#rust", "bob", "out"], ["#rust", "carol", "out"]]);
    assert_eq!(parsed(&h.take(b)).iter().filter(|m| m.command == "KICK").count(), 1, "bob sees only his own");
    assert_eq!(parsed(&h.take(c)).iter().filter(|m| m.command == "KICK").count(), 2);
}

#[test]
fn invite_checks_replies_and_invite_notify() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register_with_caps("bob", "invite-notify");
    let c = h.register_with_caps("carol", "invite-notify");
    let d = h.register("dave");
    for x in [a, b, c] {
        h.send(x, "JOIN #rust");
    }
    h.send(a, "MODE #rust +o bob");
    h.send(d, "AWAY :napping");
    h.clear(&[a, b, c, d]);

    h.send(a, "INVITE dave");
    expect(&h.take(a), "461");
    h.send(a, "INVITE ghost #rust");
    expect(&h.take(a), "401");
    h.send(a, "INVITE dave #nowhere");
    expect(&h.take(a), "403");
    h.send(d, "INVITE alice #rust");
    expect(&h.take(d), "442");
    h.send(a, "INVITE carol #rust");
    assert_eq!(expect(&h.take(a), "443").params[1..3], ["carol", "#rust"]);
    h.send(a, "MODE #rust +i");
    h.clear(&[a, b, c]);
    h.send(c, "INVITE dave #rust");
    expect(&h.take(c), "482");

    h.send(a, "INVITE DAVE #RUST");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "341").params, ["alice", "dave", "#rust"]);
    assert_eq!(expect(&lines, "301").params, ["alice", "dave", "napping"]);
    let invite = expect(&h.take(d), "INVITE");
    assert_eq!(invite.params, ["dave", "#rust"]);
    assert!(invite.source.as_deref().is_some_and(|s| s.starts_with("alice!")));
    assert_eq!(expect(&h.take(b), "INVITE").params, ["dave", "#rust"], "operator with invite-notify");
    assert!(h.take(c).is_empty(), "carol is not an operator");
    h.send(d, "JOIN #rust");
    expect(&h.take(d), "JOIN");
}

#[test]
fn a_long_kick_reason_is_cut_to_fit_the_line() {
    let mut h = Harness::new();
    let a = h.register("a_rather_long_nickname_here");
    let b = h.register("bob");
    let chan = format!("#{}", "r".repeat(63));
    for x in [a, b] {
        h.send(x, &format!("JOIN {chan}"));
    }
    h.clear(&[a, b]);
    let reason = "é".repeat(195);
    h.send(a, &format!("KICK {chan} bob :{reason}"));
    let lines = h.take(a);
    let line = lines.iter().find(|l| l.contains(" KICK ")).expect("kick");
    assert!(line.len() + 2 <= 512, "{} bytes", line.len() + 2);
    assert!(reason.starts_with(&expect(&lines, "KICK").params[2]));
}

#[test]
fn lifting_invite_only_drops_pending_invitations() {
    let mut h = Harness::new();
    let [a] = room(&mut h, &["alice"])[..] else { unreachable!() };
    let b = h.register("bob");
    h.send(a, "MODE #rust +i");
    h.send(a, "INVITE bob #rust");
    h.send(a, "MODE #rust -i");
    h.send(a, "MODE #rust +i");
    h.send(b, "JOIN #rust");
    expect(&h.take(b), "473");
}

#[test]
fn kicking_oneself_stops_the_rest_of_the_kick() {
    let mut h = Harness::new();
    let [a, b] = room(&mut h, &["alice", "bob"])[..] else { unreachable!() };
    h.send(a, "KICK #rust alice,bob");
    assert_eq!(expect(&h.take(b), "KICK").params[1], "alice");
    h.send(b, "NAMES #rust");
    assert_eq!(expect(&h.take(b), "353").params[3], "bob");
}

/// Letting someone past +i or +l is the operators' decision. A member who is not an operator
/// may still INVITE in a room that is not +i, but that is only a notice: it does not let the
/// invited past the room's limit, nor past a +i the operators set later.
#[test]
fn a_members_invitation_lets_nobody_past_the_operators_modes() {
    let mut h = Harness::new();
    let [a, b] = room(&mut h, &["alice", "bob"])[..] else { unreachable!() };
    let m = h.register("mallory");
    let n = h.register("nina");
    h.send(b, "INVITE mallory #rust");
    assert_eq!(expect(&h.take(m), "INVITE").params, ["mallory", "#rust"], "the notice arrives");
    h.send(a, "MODE #rust +i");
    h.send(m, "JOIN #rust");
    expect(&h.take(m), "473");

    h.send(a, "MODE #rust -i");
    h.send(a, "MODE #rust +l 2");
    h.send(b, "INVITE nina #rust");
    h.send(n, "JOIN #rust");
    expect(&h.take(n), "471");
    h.clear(&[a, b]);
}

/// KICK takes what TARGMAX KICK advertises: one room and many nicks, many rooms and one nick
/// (`KICK #a,#b nick`), or pairs; a room one may not kick in is refused once, the rest go on.
#[test]
fn kick_takes_several_rooms() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    let c = h.register("carol");
    h.send(a, "JOIN #a,#b,#c");
    h.send(b, "JOIN #a,#b,#c,#d");
    h.send(c, "JOIN #a,#b,#d");
    h.clear(&[a, b, c]);
    h.send(a, "KICK #a,#b,#d bob :out");
    let lines = h.take(b);
    let kicks: Vec<Vec<String>> =
        parsed(&lines).into_iter().filter(|m| m.command == "KICK").map(|m| m.params).collect();
    assert_eq!(kicks, [["#a", "bob", "out"], ["#b", "bob", "out"]], "{lines:#?}");
    assert_eq!(expect(&h.take(a), "442").params[1], "#d", "not in #d: refused there only");
    h.send(a, "KICK #a,#c carol,bob");
    let kicks: Vec<Vec<String>> =
        parsed(&h.take(a)).into_iter().filter(|m| m.command == "KICK").map(|m| m.params).collect();
    assert_eq!(kicks, [["#a", "carol", "alice"], ["#c", "bob", "alice"]], "pairs");
    h.send(a, "KICK #a,#b,#c carol,bob");
    expect(&h.take(a), "461");
    h.send(b, "NAMES #a,#b,#c,#d");
    let names: Vec<String> =
        parsed(&h.take(b)).into_iter().filter(|m| m.command == "366").map(|m| m.params[1].clone()).collect();
    assert_eq!(names, ["#a", "#b", "#c", "#d"], "NAMES answers every room, each with its 366");
}
