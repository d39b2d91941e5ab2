//! Accounts and rooms.

use crate::{AccountRecord, BanRecord, ChannelRecord, NewAccount, Store, StoreError, TopicRecord};

fn new_account(name: &str, hash: &str, email: Option<&str>) -> NewAccount {
    NewAccount {
        name: name.to_owned(),
        password_hash: hash.to_owned(),
        scram: None,
        email: email.map(str::to_owned),
        created_ms: 1_700_000_000_000,
    }
}

pub(super) fn accounts(store: &mut dyn Store) {
    assert_eq!(store.account_names().expect("names"), Vec::<String>::new(), "a fresh store has no accounts");
    assert_eq!(store.account("alice").expect("lookup"), None);

    store.create_account(&new_account("Alice", "$argon2id$one", Some("alice@example.net"))).expect("create Alice");
    match store.create_account(&new_account("ALICE", "$argon2id$two", None)) {
        Err(StoreError::AccountExists(_)) => {}
        other => panic!("creating ALICE next to Alice must fail with AccountExists, got {other:?}"),
    }
    let expected = AccountRecord {
        name: "Alice".to_owned(),
        password_hash: "$argon2id$one".to_owned(),
        scram: None,
        email: Some("alice@example.net".to_owned()),
        created_ms: 1_700_000_000_000,
    };
    assert_eq!(store.account("aLiCe").expect("lookup"), Some(expected.clone()), "lookup ignores case");
    assert_eq!(store.account("alice").expect("lookup"), Some(expected), "the failed duplicate changed nothing");

    store.create_account(&new_account("bob", "$argon2id$bob", None)).expect("create bob");
    store.create_account(&new_account("Carol", "$argon2id$carol", None)).expect("create Carol");
    assert_eq!(store.account_names().expect("names"), ["Alice", "bob", "Carol"], "display names, by folded name");
    assert_eq!(store.account("BOB").expect("lookup").map(|a| a.email), Some(None));

    assert!(store.set_password("ALICE", "$argon2id$new", None).expect("set password"), "Alice exists");
    assert_eq!(store.account("alice").expect("lookup").map(|a| a.password_hash).as_deref(), Some("$argon2id$new"));
    assert_eq!(store.account("bob").expect("lookup").map(|a| a.password_hash).as_deref(), Some("$argon2id$bob"));
    assert!(!store.set_password("nobody", "$argon2id$x", None).expect("set password"), "no such account");
    assert_eq!(store.account("nobody").expect("lookup"), None, "set_password does not create accounts");

    assert!(store.drop_account("alice").expect("drop"), "Alice existed");
    assert!(!store.drop_account("Alice").expect("drop"), "already dropped");
    assert_eq!(store.account("Alice").expect("lookup"), None);
    assert_eq!(store.account_names().expect("names"), ["bob", "Carol"]);
    store.create_account(&new_account("alice", "$argon2id$again", None)).expect("the name is free again");
    assert_eq!(store.account("ALICE").expect("lookup").map(|a| a.name).as_deref(), Some("alice"));
}

/// SCRAM credentials are stored with the account, replaced or cleared with the password, and
/// set after a login only while the password they came from is still the account's.
pub(super) fn scram_credentials(store: &mut dyn Store) {
    let mut dave = new_account("Dave", "$argon2id$dave", None);
    dave.scram = Some("SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy".to_owned());
    store.create_account(&dave).expect("create Dave");
    store.create_account(&new_account("erin", "$argon2id$erin", None)).expect("create erin");
    let scram = |s: &mut dyn Store, name: &str| s.account(name).expect("lookup").and_then(|a| a.scram);
    assert_eq!(scram(store, "DAVE"), dave.scram, "stored at registration");
    assert_eq!(scram(store, "erin"), None, "an account without credentials has none");

    assert!(!store.set_scram("erin", "$argon2id$other", "SCRAM-SHA-256$1:x$y:z").expect("set"), "stale hash");
    assert_eq!(scram(store, "erin"), None, "credentials of a password no longer the account's are not kept");
    assert!(store.set_scram("ERIN", "$argon2id$erin", "SCRAM-SHA-256$1:e$f:g").expect("set"), "current hash");
    assert_eq!(scram(store, "erin").as_deref(), Some("SCRAM-SHA-256$1:e$f:g"));
    assert!(!store.set_scram("nobody", "$argon2id$erin", "SCRAM-SHA-256$1:e$f:g").expect("set"), "no account");

    assert!(store.set_password("dave", "$argon2id$new", None).expect("set password"));
    assert_eq!(scram(store, "dave"), None, "a password change without credentials clears the old ones");
    assert!(store.set_password("dave", "$argon2id$newer", Some("SCRAM-SHA-256$2:a$b:c")).expect("set password"));
    assert_eq!(scram(store, "dave").as_deref(), Some("SCRAM-SHA-256$2:a$b:c"));
    assert_eq!(scram(store, "erin").as_deref(), Some("SCRAM-SHA-256$1:e$f:g"), "others untouched");
}

/// Client certificate fingerprints: one owner each, bounded per account, gone with the account.
pub(super) fn certificates(store: &mut dyn Store) {
    use crate::CertAdded;
    store.create_account(&new_account("Alice", "$argon2id$a", None)).expect("create Alice");
    store.create_account(&new_account("bob", "$argon2id$b", None)).expect("create bob");
    assert_eq!(store.add_cert("alice", "aa", 2).expect("add"), CertAdded::Added);
    assert_eq!(store.add_cert("ALICE", "aa", 2).expect("add"), CertAdded::AlreadyThere);
    assert_eq!(store.add_cert("bob", "aa", 2).expect("add"), CertAdded::Taken, "one owner per fingerprint");
    assert_eq!(store.add_cert("nobody", "cc", 2).expect("add"), CertAdded::NoAccount);
    assert_eq!(store.add_cert("alice", "bb", 2).expect("add"), CertAdded::Added);
    assert_eq!(store.add_cert("alice", "cc", 2).expect("add"), CertAdded::Full, "at most max per account");
    assert_eq!(store.certs("Alice").expect("list"), ["aa", "bb"]);
    assert_eq!(store.cert_owner("aa").expect("owner").as_deref(), Some("Alice"), "the display name");
    assert_eq!(store.cert_owner("cc").expect("owner"), None);
    assert!(!store.remove_cert("bob", "aa").expect("remove"), "not bob's to remove");
    assert!(store.remove_cert("alice", "aa").expect("remove"));
    assert_eq!(store.cert_owner("aa").expect("owner"), None);
    assert_eq!(store.add_cert("bob", "aa", 2).expect("add"), CertAdded::Added, "free again");
    assert!(store.drop_account("bob").expect("drop"));
    assert_eq!(store.cert_owner("aa").expect("owner"), None, "a dropped account's fingerprints go with it");
    store.create_account(&new_account("bob", "$argon2id$b2", None)).expect("bob again");
    assert_eq!(store.certs("bob").expect("list"), Vec::<String>::new(), "a new bob inherits nothing");
}

fn rust_room() -> ChannelRecord {
    ChannelRecord {
        name: "#Rust".to_owned(),
        created_ms: 1_600_000_000_000,
        topic: Some(TopicRecord {
            text: "Rust, the language | be nice".to_owned(),
            setter: "alice!alice@example.net".to_owned(),
            set_at_ms: 1_600_000_100_000,
        }),
        modes: "+nt".to_owned(),
        key: Some("hunter2".to_owned()),
        limit: Some(50),
        bans: vec![
            BanRecord { mask: "*!*@spam.example".to_owned(), setter: "alice".to_owned(), set_at_ms: 1_600_000_200_000 },
            BanRecord { mask: "troll!*@*".to_owned(), setter: "bob".to_owned(), set_at_ms: 1_600_000_100_000 },
        ],
        excepts: vec![BanRecord { mask: "$a:alice".to_owned(), setter: "alice".to_owned(), set_at_ms: 7 }],
        invex: vec![
            BanRecord { mask: "$a".to_owned(), setter: "bob".to_owned(), set_at_ms: 8 },
            BanRecord { mask: "*!*@friends.example".to_owned(), setter: "bob".to_owned(), set_at_ms: 9 },
        ],
        founder: Some("alice".to_owned()),
    }
}

pub(super) fn channels(store: &mut dyn Store) {
    assert_eq!(store.channels().expect("channels"), Vec::new(), "a fresh store has no rooms");

    let rust = rust_room();
    store.save_channel(&rust).expect("save #Rust");
    assert_eq!(
        store.channels().expect("channels"),
        std::slice::from_ref(&rust),
        "saved as given, bans, ban exceptions and invite exceptions each in order"
    );

    // Saving under another case replaces it, every field included.
    let changed = ChannelRecord {
        name: "#rust".to_owned(),
        created_ms: rust.created_ms,
        topic: None,
        modes: "+m".to_owned(),
        key: None,
        limit: None,
        bans: vec![BanRecord { mask: "*!*@new.example".to_owned(), setter: "carol".to_owned(), set_at_ms: 3 }],
        excepts: Vec::new(),
        invex: vec![BanRecord { mask: "$~a".to_owned(), setter: "carol".to_owned(), set_at_ms: 4 }],
        founder: None,
    };
    store.save_channel(&changed).expect("save #rust");
    assert_eq!(store.channels().expect("channels"), std::slice::from_ref(&changed), "an upsert, not a second room");

    let go = ChannelRecord {
        name: "#Go".to_owned(),
        created_ms: 5,
        topic: Some(TopicRecord { text: String::new(), setter: "x".to_owned(), set_at_ms: 6 }),
        modes: String::new(),
        key: None,
        limit: Some(0),
        bans: Vec::new(),
        excepts: Vec::new(),
        invex: Vec::new(),
        founder: Some("bob".to_owned()),
    };
    store.save_channel(&go).expect("save #Go");
    assert_eq!(store.channels().expect("channels"), [go.clone(), changed.clone()], "ordered by folded name");

    let unbanned = ChannelRecord { bans: Vec::new(), ..changed };
    store.save_channel(&unbanned).expect("clear the bans");
    assert_eq!(store.channels().expect("channels"), [go.clone(), unbanned]);

    assert!(store.delete_channel("#RUST").expect("delete"), "#rust was stored");
    assert!(!store.delete_channel("#rust").expect("delete"), "already deleted");
    assert_eq!(store.channels().expect("channels"), [go]);

    // A room saved again after deletion starts from what is saved, not from old bans.
    store.save_channel(&rust_room()).expect("save #Rust again");
    assert_eq!(store.channels().expect("channels").len(), 2);
    assert_eq!(store.channels().expect("channels")[1], rust_room());
}
