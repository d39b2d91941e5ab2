//! IRCv3 `draft/read-marker` as the core sees it: MARKREAD get and set, markers on JOIN before
//! 366, an account's markers kept in storage (the test plays it) and synced to every connection
//! of the account with the capability, a guest's kept for its connection only.

mod support;

use chinwag_core::{rfc3339_ms, ConnId, MarkerSet, Request, Response, MAX_READ_MARKERS};
use support::{all, parsed, Harness};

const CAPS: &str = "draft/read-marker";

fn stamp(ms: u64) -> String {
    format!("timestamp={}", rfc3339_ms(ms))
}

/// The MARKREAD lines among `lines`, as (target, value).
fn markreads(lines: &[String]) -> Vec<(String, String)> {
    all(lines, "MARKREAD").into_iter().map(|p| (p[0].clone(), p[1].clone())).collect()
}

fn marks(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(t, v)| ((*t).to_owned(), (*v).to_owned())).collect()
}

/// Logs `conn` in to `account`, answering the load of its markers with `stored`.
fn login_with_markers(h: &mut Harness, conn: ConnId, account: &str, stored: &[(&str, u64)]) {
    h.send(conn, &format!("NS IDENTIFY {account} password123"));
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok(account.into())));
    let mut markers = None;
    for (id, request) in std::mem::take(&mut h.requests) {
        match request {
            Request::Offline { .. } => h.respond(id, Response::Messages(Ok(Vec::new()))),
            Request::ReadMarkers { account: asked } => markers = Some((id, asked)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let (id, asked) = markers.expect("a client with the capability gets its account's markers loaded");
    assert_eq!(asked, account.to_lowercase());
    let list = stored.iter().map(|(t, ms)| ((*t).to_owned(), *ms)).collect();
    h.respond(id, Response::Markers(Ok(list)));
}

#[test]
fn markread_is_refused_without_a_target_or_with_a_bad_one() {
    let mut h = Harness::new();
    let c = h.register_with_caps("amy", CAPS);
    h.send(c, "MARKREAD");
    let fail = &all(&h.take(c), "FAIL")[0];
    assert_eq!(fail[..2], ["MARKREAD", "NEED_MORE_PARAMS"]);
    for bad in
        ["MARKREAD #general yesterday", "MARKREAD #general *", "MARKREAD #general timestamp=soon", "MARKREAD a,b"]
    {
        h.send(c, bad);
        let fail = &all(&h.take(c), "FAIL")[0];
        assert_eq!(fail[..2], ["MARKREAD", "INVALID_PARAMS"], "{bad}");
    }
    assert!(h.requests.is_empty(), "a guest's markers never reach storage");
}

#[test]
fn a_guest_keeps_its_markers_on_its_connection_and_they_only_move_forward() {
    let mut h = Harness::new();
    let c = h.register_with_caps("amy", CAPS);
    let now = h.now().wall_ms;
    h.send(c, "MARKREAD #general");
    assert_eq!(markreads(&h.take(c)), marks(&[("#general", "*")]), "no marker yet");
    h.send(c, &format!("MARKREAD #General {}", stamp(now - 5000)));
    assert_eq!(markreads(&h.take(c)), marks(&[("#general", &stamp(now - 5000))]), "the room's own spelling");
    h.send(c, &format!("MARKREAD #general {}", stamp(now - 9000)));
    assert_eq!(markreads(&h.take(c)), marks(&[("#general", &stamp(now - 5000))]), "older: the stored one answers");
    h.send(c, &format!("MARKREAD #general {}", stamp(now + 60_000)));
    assert_eq!(markreads(&h.take(c)), marks(&[("#general", &stamp(now))]), "nothing after now can be read");
    h.send(c, "MARKREAD Ben");
    assert_eq!(markreads(&h.take(c)), marks(&[("Ben", "*")]), "a nick is a target too");

    h.send(c, "JOIN #general");
    let lines = h.take(c);
    assert_eq!(markreads(&lines), marks(&[("#general", &stamp(now))]));

    h.disconnect(c, "bye");
    let again = h.register_with_caps("amy", CAPS);
    h.send(again, "MARKREAD #general");
    assert_eq!(markreads(&h.take(again)), marks(&[("#general", "*")]), "a guest's markers died with its connection");
}

#[test]
fn a_join_carries_the_rooms_marker_after_the_join_and_before_366() {
    let mut h = Harness::new();
    let c = h.register_with_caps("amy", CAPS);
    let then = h.now().wall_ms - 60_000;
    login_with_markers(&mut h, c, "amy", &[("#general", then)]);
    h.take(c);
    h.send(c, "JOIN #general,#random");
    let lines = parsed(&h.take(c));
    let at = |pred: &dyn Fn(&chinwag_proto::Message) -> bool| lines.iter().position(pred).expect("line present");
    let join = at(&|m| m.command == "JOIN" && m.params[0] == "#general");
    let mark = at(&|m| m.command == "MARKREAD" && m.params[0] == "#general");
    let end = at(&|m| m.command == "366" && m.params[1] == "#general");
    assert!(join < mark && mark < end, "JOIN, MARKREAD, 366 in that order: {lines:#?}");
    assert_eq!(lines[mark].params[1], stamp(then));
    assert_eq!(lines[mark].source.as_deref(), Some("chinwag.local"), "from the server");
    let random = lines.iter().find(|m| m.command == "MARKREAD" && m.params[0] == "#random").expect("#random's");
    assert_eq!(random.params[1], "*", "no marker stored for #random");

    // Without the capability, a JOIN says nothing of markers.
    let plain = h.register("ben");
    h.login(plain, "ben");
    h.send(plain, "JOIN #general");
    assert!(markreads(&h.take(plain)).is_empty());
}

#[test]
fn a_join_right_after_the_login_waits_for_the_markers() {
    let mut h = Harness::new();
    let c = h.register_with_caps("amy", CAPS);
    let then = h.now().wall_ms - 1000;
    h.send(c, "NS IDENTIFY amy password123");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("amy".into())));
    h.send(c, "JOIN #general");
    assert!(all(&h.take(c), "JOIN").is_empty(), "the JOIN waits for the account's markers");
    let (id, request) =
        h.requests.iter().find(|(_, r)| matches!(r, Request::ReadMarkers { .. })).cloned().expect("load");
    assert_eq!(request, Request::ReadMarkers { account: "amy".into() });
    h.respond(id, Response::Markers(Ok(vec![("#general".into(), then)])));
    let lines = h.take(c);
    assert_eq!(all(&lines, "JOIN").len(), 1);
    assert_eq!(markreads(&lines), marks(&[("#general", &stamp(then))]));
}

#[test]
fn a_marker_set_is_stored_then_synced_to_the_accounts_connections_with_the_capability() {
    let mut h = Harness::new();
    let laptop = h.register_with_caps("amy", CAPS);
    let phone = h.register_with_caps("amy_phone", CAPS);
    let old_client = h.register("amy_old");
    let other = h.register_with_caps("ben", CAPS);
    login_with_markers(&mut h, laptop, "amy", &[]);
    h.send(phone, "NS IDENTIFY amy password123");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("amy".into())));
    let (id, request) = h.next_request();
    assert!(matches!(request, Request::Offline { .. }), "markers already loaded for the account: {request:?}");
    h.respond(id, Response::Messages(Ok(Vec::new())));
    h.login(old_client, "amy");
    login_with_markers(&mut h, other, "ben", &[]);
    assert!(h.requests.iter().all(|(_, r)| !matches!(r, Request::ReadMarkers { .. })), "loaded once per account");
    h.requests.clear();
    h.clear(&[laptop, phone, old_client, other]);

    let t = h.now().wall_ms - 1000;
    h.send(laptop, &format!("MARKREAD #general {}", stamp(t)));
    assert!(markreads(&h.take(laptop)).is_empty(), "nothing until storage has it");
    let (id, request) = h.next_request();
    let expected =
        Request::SetReadMarker { account: "amy".into(), target: "#general".into(), time_ms: t, max: MAX_READ_MARKERS };
    assert_eq!(request, expected);
    h.respond(id, Response::Marker(Ok(Some(MarkerSet { time_ms: t, evicted: Vec::new() }))));
    let synced = marks(&[("#general", &stamp(t))]);
    assert_eq!(markreads(&h.take(laptop)), synced, "the setter's answer");
    assert_eq!(markreads(&h.take(phone)), synced, "the account's other device");
    assert!(markreads(&h.take(old_client)).is_empty(), "a connection without the capability is not told");
    assert!(markreads(&h.take(other)).is_empty(), "markers are never shown to another account");

    // An older time: storage keeps and answers the newer one; only the asker hears of it.
    h.send(phone, &format!("MARKREAD #general {}", stamp(t - 5000)));
    let (id, _) = h.next_request();
    h.respond(id, Response::Marker(Ok(Some(MarkerSet { time_ms: t, evicted: Vec::new() }))));
    assert_eq!(markreads(&h.take(phone)), synced);
    assert!(markreads(&h.take(laptop)).is_empty(), "nothing changed, nothing to sync");

    // Known now: a get needs no storage, and a later JOIN carries it.
    h.send(phone, "MARKREAD #GENERAL");
    assert_eq!(markreads(&h.take(phone)), synced);
    assert!(h.requests.is_empty());
    h.send(laptop, "JOIN #general");
    assert_eq!(markreads(&h.take(laptop)), synced);
}

#[test]
fn a_marker_pushed_out_by_the_bound_reads_as_none() {
    let mut h = Harness::new();
    let c = h.register_with_caps("amy", CAPS);
    let t = h.now().wall_ms - 1000;
    login_with_markers(&mut h, c, "amy", &[("#general", t - 100), ("#random", t - 50)]);
    h.send(c, &format!("MARKREAD #tech {}", stamp(t)));
    let (id, _) = h.next_request();
    h.respond(id, Response::Marker(Ok(Some(MarkerSet { time_ms: t, evicted: vec!["#general".into()] }))));
    h.take(c);
    h.send(c, "MARKREAD #general");
    assert_eq!(markreads(&h.take(c)), marks(&[("#general", "*")]));
    h.send(c, "MARKREAD #random");
    assert_eq!(markreads(&h.take(c)), marks(&[("#random", &stamp(t - 50))]));
}

#[test]
fn a_guest_connection_keeps_at_most_the_bound_and_forgets_the_oldest() {
    let mut cfg = chinwag_core::Config::default();
    cfg.limits.autoreplay_lines = 0;
    // No flood budget: this client sends more than a person would.
    cfg.limits.flood.every = std::time::Duration::ZERO;
    let mut h = Harness::with_config(cfg);
    let c = h.register_with_caps("amy", CAPS);
    let start = h.now().wall_ms - 1_000_000;
    for i in 0..=MAX_READ_MARKERS as u64 {
        h.send(c, &format!("MARKREAD nick{i} {}", stamp(start + i)));
        h.advance(std::time::Duration::from_millis(1));
    }
    h.take(c);
    h.send(c, "MARKREAD nick0");
    assert_eq!(markreads(&h.take(c)), marks(&[("nick0", "*")]), "the one read longest ago went");
    h.send(c, "MARKREAD nick1");
    assert_eq!(markreads(&h.take(c)), marks(&[("nick1", &stamp(start + 1))]));
}

#[test]
fn storage_failures_are_internal_errors() {
    let mut h = Harness::new();
    let c = h.register_with_caps("amy", "draft/read-marker labeled-response");
    login_with_markers(&mut h, c, "amy", &[]);
    h.take(c);
    h.send(c, &format!("@label=m1 MARKREAD #general {}", stamp(h.now().wall_ms)));
    let (id, _) = h.next_request();
    h.respond(id, Response::Marker(Err(chinwag_core::Failure::Unavailable("disk".into()))));
    let lines = parsed(&h.take(c));
    let fail = lines.iter().find(|m| m.command == "FAIL").expect("FAIL");
    assert_eq!(fail.params[..3], ["MARKREAD", "INTERNAL_ERROR", "#general"]);
    assert_eq!(fail.tag("label"), Some("m1"), "the answer keeps the command's label across the round trip");
}

#[test]
fn without_the_capability_a_get_still_answers_and_enabling_it_sends_the_rooms_markers() {
    let mut h = Harness::new();
    let c = h.register("amy");
    h.login(c, "amy");
    h.send(c, "JOIN #general");
    h.take(c);
    let t = h.now().wall_ms - 1000;
    h.send(c, "MARKREAD #general");
    let (id, request) = h.next_request();
    assert_eq!(request, Request::ReadMarkers { account: "amy".into() }, "not loaded yet: asked of storage");
    h.respond(id, Response::Markers(Ok(vec![("#general".into(), t)])));
    assert_eq!(markreads(&h.take(c)), marks(&[("#general", &stamp(t))]));

    // Loaded now, so enabling the capability sends at once what the client missed at JOIN.
    h.send(c, "CAP REQ draft/read-marker");
    let lines = h.take(c);
    assert!(lines[0].contains(" ACK "), "{lines:#?}");
    assert_eq!(markreads(&lines), marks(&[("#general", &stamp(t))]));
}
