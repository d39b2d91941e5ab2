//! The backend conformance suite against [`SqliteStore`], one fresh file per check.

use chinwag_store::{conformance, SqliteOptions, SqliteStore};

#[test]
fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let path = dir.path().join(format!("check-{n}.db"));
        SqliteStore::open(&path, SqliteOptions::default()).expect("open a fresh store")
    });
}

/// The same suite with `synchronous = NORMAL`: durability settings must not change answers.
#[test]
fn sqlite_passes_the_conformance_suite_with_synchronous_normal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let path = dir.path().join(format!("check-{n}.db"));
        let options = SqliteOptions { synchronous: chinwag_store::Synchronous::Normal, ..SqliteOptions::default() };
        SqliteStore::open(&path, options).expect("open a fresh store")
    });
}

/// Four connections to one file claim one device's one-time keys at once: each key goes out once.
#[test]
fn sqlite_hands_out_each_one_time_key_once_under_concurrent_claims() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.db");
    conformance::concurrent_claims(|| {
        SqliteStore::open(&path, SqliteOptions::default()).expect("open the shared file")
    });
}
