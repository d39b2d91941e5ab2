//! Read markers: per account and target, only forward, bounded, gone with the account.

use super::offline::register;
use crate::{MarkerSet, ReadMarker, Store};

fn set(store: &mut dyn Store, account: &str, target: &str, time_ms: u64, max: usize) -> Option<MarkerSet> {
    store.set_read_marker(account, target, time_ms, max).unwrap_or_else(|e| panic!("set {target}: {e}"))
}

fn stored(time_ms: u64, evicted: &[&str]) -> Option<MarkerSet> {
    Some(MarkerSet { time_ms, evicted: evicted.iter().map(|t| (*t).to_owned()).collect() })
}

fn markers(store: &mut dyn Store, account: &str) -> Vec<(String, u64)> {
    let list = store.read_markers(account).expect("read markers");
    list.into_iter().map(|ReadMarker { target, time_ms }| (target, time_ms)).collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(t, ms)| ((*t).to_owned(), *ms)).collect()
}

pub(super) fn read_markers(store: &mut dyn Store) {
    assert_eq!(set(store, "nobody", "#room", 1000, 10), None, "no account, no marker");
    assert!(markers(store, "nobody").is_empty());

    register(store, "Alice");
    assert!(markers(store, "alice").is_empty(), "none yet");
    assert_eq!(set(store, "alice", "#room", 1000, 10), stored(1000, &[]));
    assert_eq!(set(store, "ALICE", "#room", 500, 10), stored(1000, &[]), "never back: the stored one answers");
    assert_eq!(set(store, "alice", "#room", 1000, 10), stored(1000, &[]), "the same time changes nothing");
    assert_eq!(set(store, "Alice", "#room", 2000, 10), stored(2000, &[]), "forward, any case");
    assert_eq!(set(store, "alice", "#Room", 10, 10), stored(10, &[]), "targets are the caller's keys, exact");
    assert_eq!(set(store, "alice", "bob", 1500, 10), stored(1500, &[]));
    assert_eq!(markers(store, "ALICE"), pairs(&[("#Room", 10), ("#room", 2000), ("bob", 1500)]), "by target");

    // At the bound, a new target pushes out the oldest marker; updating one pushes out nothing.
    assert_eq!(set(store, "alice", "carol", 100, 3), stored(100, &["#Room"]), "the oldest goes");
    assert_eq!(markers(store, "alice"), pairs(&[("#room", 2000), ("bob", 1500), ("carol", 100)]));
    assert_eq!(set(store, "alice", "carol", 3000, 3), stored(3000, &[]), "an update at the bound");
    assert_eq!(set(store, "alice", "dave", 50, 3), stored(50, &["bob"]), "even for a target older than all");
    assert_eq!(markers(store, "alice"), pairs(&[("#room", 2000), ("carol", 3000), ("dave", 50)]));
    assert_eq!(set(store, "alice", "erin", 60, 2), stored(60, &["#room", "dave"]), "a lowered bound");
    assert_eq!(markers(store, "alice"), pairs(&[("carol", 3000), ("erin", 60)]));

    // Ties go by target.
    register(store, "bob");
    set(store, "bob", "y", 10, 2);
    set(store, "bob", "x", 10, 2);
    assert_eq!(set(store, "bob", "z", 20, 2), stored(20, &["x"]));
    assert_eq!(markers(store, "bob"), pairs(&[("y", 10), ("z", 20)]), "another account's own");

    assert!(store.drop_account("alice").expect("drop"));
    assert!(markers(store, "alice").is_empty(), "markers go with the account");
    register(store, "alice");
    assert!(markers(store, "alice").is_empty(), "a new account of the name starts with none");
    assert_eq!(markers(store, "bob"), pairs(&[("y", 10), ("z", 20)]), "others stay");
}
