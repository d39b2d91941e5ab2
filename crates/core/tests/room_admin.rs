//! Who runs a room nobody founded, and the administrator's room commands (`chinwag admin op`,
//! `deop`, `mode`, `topic`), which act on any room as the server.

mod support;

use std::time::Duration;

use chinwag_core::ChannelSnapshot;
use support::{expect, find, Harness};

fn guest_room(name: &str) -> ChannelSnapshot {
    ChannelSnapshot {
        name: name.into(),
        created_ms: 1_795_000_000_000,
        topic: None,
        modes: "+nt".into(),
        key: None,
        limit: None,
        bans: vec![],
        excepts: vec![],
        invex: vec![],
        founder: None,
    }
}

#[test]
fn a_guests_room_restored_after_a_restart_goes_to_nobody_until_the_administrator_gives_op() {
    let mut h = Harness::new();
    h.server.restore(vec![], vec![guest_room("#den")]);
    let mallory = h.register("mallory");
    h.send(mallory, "JOIN #den");
    let names = expect(&h.take(mallory), "353");
    assert_eq!(names.params[3], "mallory", "first back in is not op: {names:?}");
    h.send(mallory, "MODE #den +i");
    assert!(find(&h.take(mallory), "482").is_some(), "and cannot act as one");

    let now = h.now();
    let applied = h.server.room_mode("#DEN", "+o", &["mallory".into()], "test", now).expect("op given");
    h.advance(Duration::ZERO); // the harness collects the effects on a tick
    assert_eq!(applied, ["+o", "mallory"]);
    let lines = h.take(mallory);
    let mode = expect(&lines, "MODE");
    assert_eq!(mode.source.as_deref(), Some("chinwag.local"), "the change comes from the server");
    assert_eq!(mode.params, ["#den", "+o", "mallory"]);

    let now = h.now();
    let applied = h.server.room_mode("#den", "-o", &["mallory".into()], "test", now).expect("op taken");
    h.advance(Duration::ZERO); // the harness collects the effects on a tick
    assert_eq!(applied, ["-o", "mallory"]);
    let now = h.now();
    let err = h.server.room_mode("#den", "+o", &["nobody".into()], "test", now).expect_err("nobody to op");
    h.advance(Duration::ZERO); // the harness collects the effects on a tick
    assert!(err.contains("No such nick"), "{err}");
    let now = h.now();
    assert!(h.server.room_mode("#nowhere", "+m", &[], "test", now).is_err());
    h.advance(Duration::ZERO); // the harness collects the effects on a tick
}

#[test]
fn a_new_room_still_goes_to_whoever_makes_it() {
    let mut h = Harness::new();
    let amy = h.register("amy");
    h.send(amy, "JOIN #fresh");
    assert_eq!(expect(&h.take(amy), "353").params[3], "@amy");
}

#[test]
fn the_administrator_moderates_a_default_room_nobody_runs() {
    let mut h = Harness::new();
    let [amy, ben] = h.members_of("#general", &["amy", "ben"])[..] else { unreachable!() };
    let now = h.now();
    h.server.room_topic("#general", "Be nice", "test", now).expect("topic set");
    h.advance(Duration::ZERO); // the harness collects the effects on a tick
    for conn in [amy, ben] {
        let topic = expect(&h.take(conn), "TOPIC");
        assert_eq!(topic.source.as_deref(), Some("chinwag.local"));
        assert_eq!(topic.params, ["#general", "Be nice"]);
    }
    let saved = h.saved_rooms.last().expect("saved");
    assert_eq!(saved.topic.as_ref().map(|t| t.0.as_str()), Some("Be nice"));

    let now = h.now();
    let applied = h.server.room_mode("#general", "+mb", &["spam*!*@*".into()], "test", now).expect("modes set");
    h.advance(Duration::ZERO); // the harness collects the effects on a tick
    assert_eq!(applied, ["+mb", "spam*!*@*"]);
    assert_eq!(expect(&h.take(ben), "MODE").params, ["#general", "+mb", "spam*!*@*"]);
    h.send(ben, "PRIVMSG #general :can I speak?");
    assert!(find(&h.take(ben), "404").is_some(), "+m holds");
    let now = h.now();
    h.server.room_mode("#general", "+v", &["ben".into()], "test", now).expect("voice");
    h.advance(Duration::ZERO); // the harness collects the effects on a tick
    h.send(ben, "PRIVMSG #general :now I can");
    assert!(find(&h.take(amy), "PRIVMSG").is_some());
}
