//! The public directory LAN discovery announces: rooms anyone may list, never secret ones.

mod support;

use support::Harness;

#[test]
fn public_rooms_leave_out_secret_rooms_and_count_members() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    h.connect();
    h.send(a, "JOIN #busy,#hidden,#locked");
    h.send(b, "JOIN #busy");
    h.send(a, "TOPIC #busy :all welcome");
    h.send(a, "MODE #hidden +s");
    h.send(a, "MODE #locked +ik sesame");
    let rooms = h.server.public_rooms(100);
    let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["#busy", "#locked", "#general", "#random", "#tech"], "most members first, then by name");
    assert_eq!(rooms[0].members, 2);
    assert_eq!(rooms[0].topic.as_deref(), Some("all welcome"));
    assert!(rooms[1].invite_only && rooms[1].key_required);
    assert!(!rooms[0].invite_only && !rooms[0].key_required);
    let top: Vec<String> = h.server.public_rooms(2).into_iter().map(|r| r.name).collect();
    assert_eq!(top, ["#busy", "#locked"], "bounded by the caller, keeping the biggest");
    assert_eq!(h.server.users_online(), 2, "an unregistered connection is not a user online");
    h.send(a, "MODE #hidden -s");
    assert!(h.server.public_rooms(100).iter().any(|r| r.name == "#hidden"));
}
