//! Questions about people: WHO and WHOX, WHOIS, WHOWAS, ISON, USERHOST.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use support::{all, expect, find, parsed, Harness};

#[test]
fn who_on_a_room_lists_members_with_away_and_prefix_flags() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    let c = h.register_with_caps("carol", "multi-prefix");
    for x in [a, b, c] {
        h.send(x, "JOIN #rust");
    }
    h.send(a, "MODE #rust +v alice");
    h.send(a, "MODE #rust +v bob");
    h.send(b, "AWAY :lunch");
    h.clear(&[a, b, c]);

    h.send(b, "WHO #RUST");
    let lines = h.take(b);
    let rows = all(&lines, "352");
    assert_eq!(
        rows[0],
        ["bob", "#rust", "~alice", "127.0.0.1", "chinwag.local", "alice", "H@", "0 alice real"],
        "highest prefix only without multi-prefix"
    );
    assert_eq!(rows[1][5..7], ["bob", "G+"]);
    assert_eq!(rows[2][5..7], ["carol", "H"]);
    assert_eq!(expect(&lines, "315").params, ["bob", "#RUST", "End of WHO list"], "the mask as given");

    h.send(c, "WHO #rust");
    assert_eq!(all(&h.take(c), "352")[0][6], "H@+", "multi-prefix shows every prefix");
}

#[test]
fn who_by_mask_matches_nicks_of_everyone_visible() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let _b = h.register("alfred");
    let _c = h.register("bob");
    h.send(a, "WHO al*");
    let lines = h.take(a);
    let nicks: Vec<String> = all(&lines, "352").into_iter().map(|r| r[5].clone()).collect();
    assert_eq!(nicks, ["alice", "alfred"]);
    assert_eq!(all(&lines, "352")[0][1], "*", "no room for a mask query");
    h.send(a, "WHO nobody");
    let lines = h.take(a);
    assert!(find(&lines, "352").is_none());
    assert_eq!(expect(&lines, "315").params[1], "nobody");
}

#[test]
fn whox_sends_the_requested_fields_in_canonical_order() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.send(a, "JOIN #rust");
    h.clear(&[a]);
    h.send(a, "WHO #rust %nuhcat,42");
    let lines = h.take(a);
    assert!(find(&lines, "352").is_none());
    assert_eq!(expect(&lines, "354").params, ["alice", "42", "#rust", "~alice", "127.0.0.1", "alice", "0"]);
    expect(&lines, "315");

    h.send(a, "WHO alice %rfdniols");
    let row = expect(&h.take(a), "354").params;
    assert_eq!(row, ["alice", "255.255.255.255", "chinwag.local", "alice", "H", "0", "0", "0", "alice real"]);

    h.send(a, "WHO alice %tn,bogus");
    assert_eq!(expect(&h.take(a), "354").params, ["alice", "0", "alice"], "a token must be a short number");
}

#[test]
fn whox_idle_counts_from_the_last_message() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.advance(Duration::from_secs(40));
    h.send(a, "WHO alice %nl");
    assert_eq!(expect(&h.take(a), "354").params[1..], ["alice", "40"]);
    h.send(a, "PRIVMSG alice :note to self");
    h.send(a, "WHO alice %nl");
    assert_eq!(expect(&h.take(a), "354").params[1..], ["alice", "0"]);
}

#[test]
fn invisible_users_are_hidden_from_strangers() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    let d = h.register("dave");
    h.send(a, "MODE alice +i");
    for x in [a, b] {
        h.send(x, "JOIN #general");
    }
    h.clear(&[a, b, d]);

    let who_nicks = |h: &mut Harness, conn, query: &str| -> Vec<String> {
        h.send(conn, query);
        all(&h.take(conn), "352").into_iter().map(|r| r[5].clone()).collect()
    };
    assert_eq!(who_nicks(&mut h, d, "WHO *"), ["bob", "dave"], "dave shares no room with alice");
    assert_eq!(who_nicks(&mut h, d, "WHO #general"), ["bob"], "outsiders see only visible members");
    assert_eq!(who_nicks(&mut h, b, "WHO alice"), ["alice"], "bob shares a room");
    assert_eq!(who_nicks(&mut h, b, "WHO #general"), ["alice", "bob"]);
    assert_eq!(who_nicks(&mut h, a, "WHO alice"), ["alice"], "one always sees oneself");
    assert_eq!(who_nicks(&mut h, d, "WHO ALICE"), ["alice"], "an exact nick shows even a +i user");
    assert!(who_nicks(&mut h, d, "WHO ali*").is_empty(), "a mask does not");
    h.send(d, "NAMES #general");
    assert_eq!(expect(&h.take(d), "353").params[3], "bob");

    h.send(b, "JOIN #hideout");
    h.send(b, "MODE #hideout +s");
    assert!(who_nicks(&mut h, d, "WHO #hideout").is_empty(), "a secret room shows nobody to outsiders");
}

#[test]
fn whois_shows_user_rooms_server_away_idle_and_tls() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let t = h.connect_from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), true);
    h.send(t, "NICK tess");
    h.send(t, "USER tess 0 * :Tess Secure");
    h.send(t, "JOIN #rust,#general,#hideout");
    h.send(t, "MODE #hideout +s");
    h.send(t, "AWAY :brb");
    h.clear(&[a, t]);
    h.advance(Duration::from_secs(30));

    h.send(a, "WHOIS TESS");
    let lines = h.take(a);
    let codes: Vec<String> = parsed(&lines).into_iter().map(|m| m.command).collect();
    assert_eq!(codes, ["311", "319", "312", "301", "671", "317", "318"]);
    assert_eq!(expect(&lines, "311").params, ["alice", "tess", "~tess", "192.0.2.7", "*", "Tess Secure"]);
    assert_eq!(expect(&lines, "319").params[2], "#general @#rust", "the secret room is left out");
    assert_eq!(expect(&lines, "312").params[1..3], ["tess", "chinwag.local"]);
    assert_eq!(expect(&lines, "301").params[2], "brb");
    assert_eq!(expect(&lines, "671").params[1], "tess");
    let idle = expect(&lines, "317").params;
    assert_eq!(idle[1..4], ["tess", "30", "1795269772"]);

    h.send(t, "WHOIS chinwag.local tess");
    let lines = h.take(t);
    assert_eq!(expect(&lines, "319").params[2], "#general @#hideout @#rust", "one sees one's own secret rooms");

    h.send(t, "WHOIS alice");
    let lines = h.take(t);
    assert!(find(&lines, "671").is_none(), "alice is not on TLS");
    assert!(find(&lines, "319").is_none(), "alice is in no room");
    assert!(find(&lines, "301").is_none());

    h.send(a, "WHOIS ghost");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "401").params[1], "ghost");
    assert_eq!(expect(&lines, "318").params[1], "ghost");
    h.send(a, "WHOIS");
    expect(&h.take(a), "431");
}

#[test]
fn whowas_remembers_quits_and_nick_changes_newest_first() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    h.send(b, "NICK robert");
    h.send(b, "QUIT :bye");
    let e = h.connect();
    h.send(e, "NICK bob");
    h.send(e, "USER bob 0 * :Second Bob");
    h.disconnect(e, "gone");

    h.send(a, "WHOWAS BOB");
    let lines = h.take(a);
    let users = all(&lines, "314");
    assert_eq!(users.len(), 2);
    assert_eq!(users[0], ["alice", "bob", "~bob", "127.0.0.1", "*", "Second Bob"], "newest first");
    assert_eq!(users[1][5], "bob real");
    assert_eq!(all(&lines, "312")[0][1..3], ["bob", "chinwag.local"]);
    assert_eq!(expect(&lines, "369").params[1], "BOB");

    h.send(a, "WHOWAS bob 1");
    assert_eq!(all(&h.take(a), "314").len(), 1);
    h.send(a, "WHOWAS robert");
    assert_eq!(expect(&h.take(a), "314").params[1], "robert");
    h.send(a, "WHOWAS ghost");
    let lines = h.take(a);
    expect(&lines, "406");
    expect(&lines, "369");
    h.send(a, "WHOWAS");
    expect(&h.take(a), "431");
}

#[test]
fn ison_and_userhost_answer_for_online_nicks() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("Bob");
    h.send(b, "AWAY :out");
    let pending = h.connect();
    h.send(pending, "NICK pending");

    h.send(a, "ISON alice :nobody BOB pending");
    assert_eq!(expect(&h.take(a), "303").params, ["alice", "alice Bob"], "canonical spelling, online only");
    h.send(a, "USERHOST alice bob ghost");
    assert_eq!(expect(&h.take(a), "302").params[1], "alice=+~alice@127.0.0.1 Bob=-~Bob@127.0.0.1");
    h.send(a, "ISON");
    expect(&h.take(a), "461");
    h.send(a, "USERHOST");
    expect(&h.take(a), "461");
}
