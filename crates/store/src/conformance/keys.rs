//! The end-to-end encryption key directory: devices, one-time keys (each handed out once),
//! fallback keys, and what dropping an account takes with it.

use std::collections::BTreeSet;

use crate::{
    device_queue, ClaimedKey, DeviceKeys, DevicePublished, KeyCounts, NewAccount, SignedKey, Store, StoredMessage,
};

fn account(store: &mut dyn Store, name: &str) {
    let record = NewAccount {
        name: name.to_owned(),
        password_hash: "$argon2id$x".to_owned(),
        scram: None,
        email: None,
        created_ms: 1_700_000_000_000,
    };
    store.create_account(&record).unwrap_or_else(|e| panic!("create {name}: {e}"));
}

fn device(id: &str, generation: u32) -> DeviceKeys {
    DeviceKeys {
        device: id.to_owned(),
        curve25519: format!("curve-{id}-{generation}"),
        ed25519: format!("ed-{id}-{generation}"),
        signature: format!("sig-{id}-{generation}"),
    }
}

fn key(name: &str) -> SignedKey {
    SignedKey { key: format!("otk-{name}"), signature: format!("sig-{name}") }
}

fn counts(one_time_keys: usize, fallback: bool) -> Option<KeyCounts> {
    Some(KeyCounts { one_time_keys, fallback })
}

pub(super) fn devices(store: &mut dyn Store) {
    account(store, "Alice");
    assert_eq!(store.devices("alice").expect("devices"), Vec::new(), "no device yet");
    let publish = |store: &mut dyn Store, name: &str, d: &DeviceKeys| {
        store.publish_device(name, d, 3).unwrap_or_else(|e| panic!("publish {}: {e}", d.device))
    };
    assert_eq!(publish(store, "ALICE", &device("laptop", 1)), DevicePublished::New);
    assert_eq!(publish(store, "alice", &device("laptop", 1)), DevicePublished::Unchanged);
    assert_eq!(publish(store, "alice", &device("Phone", 1)), DevicePublished::New, "ids are case-sensitive");
    assert_eq!(
        store.devices("Alice").expect("devices"),
        [device("Phone", 1), device("laptop", 1)],
        "ordered by device id, as published"
    );
    assert_eq!(publish(store, "nobody", &device("laptop", 1)), DevicePublished::NoAccount);
    assert_eq!(store.devices("nobody").expect("devices"), Vec::new());

    // New identity keys under a known id replace the old ones and empty the pools.
    store.add_one_time_keys("alice", "laptop", &[key("a"), key("b")], 10).expect("add");
    store.set_fallback_key("alice", "laptop", &key("fb")).expect("fallback");
    assert_eq!(store.key_counts("alice", "laptop").expect("counts"), counts(2, true));
    assert_eq!(publish(store, "alice", &device("laptop", 2)), DevicePublished::Replaced);
    assert_eq!(store.key_counts("alice", "laptop").expect("counts"), counts(0, false), "old pools are gone");
    assert_eq!(store.claim_key("alice", "laptop").expect("claim"), None);
    assert_eq!(store.devices("alice").expect("devices"), [device("Phone", 1), device("laptop", 2)]);

    assert_eq!(publish(store, "alice", &device("tablet", 1)), DevicePublished::New);
    assert_eq!(publish(store, "alice", &device("desktop", 1)), DevicePublished::TooManyDevices);
    assert_eq!(publish(store, "alice", &device("tablet", 1)), DevicePublished::Unchanged, "known ids still publish");
    assert_eq!(store.devices("alice").expect("devices").len(), 3, "the refused device was not stored");

    assert!(store.remove_device("alice", "tablet").expect("remove"));
    assert!(!store.remove_device("alice", "tablet").expect("remove"), "already removed");
    assert_eq!(publish(store, "alice", &device("desktop", 1)), DevicePublished::New, "room again");
    assert_eq!(store.key_counts("alice", "tablet").expect("counts"), None);
}

pub(super) fn one_time_keys(store: &mut dyn Store) {
    account(store, "bob");
    assert_eq!(store.add_one_time_keys("bob", "laptop", &[key("x")], 10).expect("add"), None, "no such device");
    assert_eq!(store.set_fallback_key("bob", "laptop", &key("x")).expect("fallback"), None, "no such device");
    store.publish_device("bob", &device("laptop", 1), 10).expect("publish");
    store.publish_device("bob", &device("phone", 1), 10).expect("publish");

    let added = store.add_one_time_keys("BOB", "laptop", &[key("1"), key("2"), key("1"), key("3")], 10);
    assert_eq!(added.expect("add"), counts(3, false), "a repeated key is stored once");
    let capped = store.add_one_time_keys("bob", "laptop", &[key("3"), key("4"), key("5"), key("6")], 5);
    assert_eq!(capped.expect("add"), counts(5, false), "the pool stops at its cap");
    store.add_one_time_keys("bob", "phone", &[key("p1")], 10).expect("add");

    // Claimed in upload order, each once, and only from the device asked for.
    let mut seen = BTreeSet::new();
    for (expected, remaining) in [("1", 4), ("2", 3), ("3", 2), ("4", 1), ("5", 0)] {
        let got = store.claim_key("bob", "laptop").expect("claim");
        assert_eq!(got, Some(ClaimedKey { key: key(expected), fallback: false, remaining }));
        assert!(seen.insert(expected), "{expected} handed out twice");
    }
    assert_eq!(store.claim_key("bob", "laptop").expect("claim"), None, "no one-time key and no fallback");
    assert_eq!(store.key_counts("bob", "phone").expect("counts"), counts(1, false), "the phone's pool is its own");

    // With the pool empty the fallback key is handed out, and again, until it is replaced.
    assert_eq!(store.set_fallback_key("bob", "laptop", &key("fb1")).expect("fallback"), counts(0, true));
    for _ in 0..2 {
        let got = store.claim_key("Bob", "laptop").expect("claim");
        assert_eq!(got, Some(ClaimedKey { key: key("fb1"), fallback: true, remaining: 0 }));
    }
    store.set_fallback_key("bob", "laptop", &key("fb2")).expect("fallback");
    store.add_one_time_keys("bob", "laptop", &[key("6")], 10).expect("add");
    let got = store.claim_key("bob", "laptop").expect("claim");
    assert_eq!(got, Some(ClaimedKey { key: key("6"), fallback: false, remaining: 0 }), "one-time keys come first");
    let got = store.claim_key("bob", "laptop").expect("claim");
    assert_eq!(got.map(|c| c.key), Some(key("fb2")), "the replaced fallback key");
    assert_eq!(store.claim_key("bob", "tablet").expect("claim"), None, "unknown device");
    assert_eq!(store.claim_key("nobody", "laptop").expect("claim"), None, "unknown account");
}

pub(super) fn drop_account_deletes_keys(store: &mut dyn Store) {
    account(store, "carol");
    account(store, "dave");
    for name in ["carol", "dave"] {
        store.publish_device(name, &device("laptop", 1), 10).expect("publish");
        store.add_one_time_keys(name, "laptop", &[key("1"), key("2")], 10).expect("add");
        store.set_fallback_key(name, "laptop", &key("fb")).expect("fallback");
    }
    assert!(store.drop_account("Carol").expect("drop"));
    assert_eq!(store.devices("carol").expect("devices"), Vec::new(), "devices went with the account");
    assert_eq!(store.key_counts("carol", "laptop").expect("counts"), None);
    assert_eq!(store.claim_key("carol", "laptop").expect("claim"), None, "keys went with the account");
    assert_eq!(store.key_counts("dave", "laptop").expect("counts"), counts(2, true), "others are untouched");

    // Someone who registers the name afterwards starts with nothing of the old owner's.
    account(store, "carol");
    assert_eq!(store.devices("carol").expect("devices"), Vec::new());
    assert_eq!(store.publish_device("carol", &device("laptop", 9), 10).expect("publish"), DevicePublished::New);
    assert_eq!(store.claim_key("carol", "laptop").expect("claim"), None);
}

/// For backends that can be opened more than once on the same data (SQLite on one file, a
/// shared PostgreSQL): several handles claim one device's keys at the same time from several
/// threads, and every one-time key is handed out exactly once. `open` gives a new handle on the
/// same, initially empty, data each time it is called.
pub fn concurrent_claims<S: Store>(open: impl Fn() -> S + Sync) {
    const HANDLES: usize = 4;
    const KEYS: usize = 200;
    let mut first = open();
    account(&mut first, "erin");
    first.publish_device("erin", &device("laptop", 1), 10).expect("publish");
    let keys: Vec<SignedKey> = (0..KEYS).map(|i| key(&i.to_string())).collect();
    first.add_one_time_keys("erin", "laptop", &keys, KEYS).expect("add");
    first.set_fallback_key("erin", "laptop", &key("fb")).expect("fallback");
    drop(first);

    let claimed: Vec<Vec<ClaimedKey>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..HANDLES)
            .map(|_| {
                scope.spawn(|| {
                    let mut store = open();
                    let mut got = Vec::new();
                    // Bounded: each handle stops at the first fallback key, or after KEYS claims.
                    for _ in 0..=KEYS {
                        match store.claim_key("erin", "laptop").expect("claim") {
                            Some(c) if c.fallback => break,
                            Some(c) => got.push(c),
                            None => panic!("a device with a fallback key always has a key to hand out"),
                        }
                    }
                    got
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("claiming thread")).collect()
    });
    let all: Vec<&SignedKey> = claimed.iter().flatten().map(|c| &c.key).collect();
    let distinct: BTreeSet<&SignedKey> = all.iter().copied().collect();
    assert_eq!(all.len(), KEYS, "every one-time key was handed out");
    assert_eq!(distinct.len(), KEYS, "no one-time key was handed out twice");
}

fn encrypted(msgid: &str, queue: &str) -> StoredMessage {
    StoredMessage {
        msgid: msgid.to_owned(),
        time_ms: 1_000,
        command: "PRIVMSG".to_owned(),
        sender: "alice!a@h".to_owned(),
        sender_account: Some("alice".to_owned()),
        target: "Frank".to_owned(),
        text: "[encrypted message]".to_owned(),
        tags: "+chinwag.dev/e2e=1,frank,Laptop,a1,x,1,1,0,AAAA".to_owned(),
        conversation: "alice\u{0}frank".to_owned(),
        participants: vec!["alice".to_owned(), "frank".to_owned()],
        offline_for: Some(queue.to_owned()),
    }
}

pub(super) fn device_queues(store: &mut dyn Store) {
    account(store, "Frank");
    store.publish_device("frank", &device("Laptop", 1), 10).expect("publish");
    store.publish_device("frank", &device("phone", 1), 10).expect("publish");
    let laptop = device_queue("FRANK", "Laptop");
    assert_eq!(laptop, "frank/laptop");
    store
        .append(&[
            encrypted("m1", &laptop),
            encrypted("m2", &device_queue("frank", "phone")),
            encrypted("m3", "frank/tablet"),
        ])
        .expect("append");
    let ids = |store: &mut dyn Store, queue: &str| -> Vec<String> {
        store.offline(queue, 10).expect("offline").into_iter().map(|m| m.msgid).collect()
    };
    assert_eq!(ids(store, &laptop), ["m1"], "each device has its own queue");
    assert_eq!(ids(store, "frank/phone"), ["m2"]);
    assert_eq!(ids(store, "frank/tablet"), Vec::<String>::new(), "no such device: not queued");
    assert_eq!(ids(store, "frank"), Vec::<String>::new(), "the account's own queue is separate");
    assert_eq!(store.clear_offline(&laptop, "m1").expect("clear"), 1);

    // New keys for a device make what waited for it unreadable: it goes. So does a removed
    // device's queue, and every queue of a dropped account.
    store.append(&[encrypted("m4", &laptop)]).expect("append");
    assert_eq!(store.publish_device("frank", &device("Laptop", 2), 10).expect("publish"), DevicePublished::Replaced);
    assert_eq!(ids(store, &laptop), Vec::<String>::new());
    store.append(&[encrypted("m5", &laptop)]).expect("append");
    assert!(store.remove_device("frank", "Laptop").expect("remove"));
    assert_eq!(ids(store, &laptop), Vec::<String>::new());
    assert!(store.drop_account("frank").expect("drop"));
    assert_eq!(ids(store, "frank/phone"), Vec::<String>::new());
}
