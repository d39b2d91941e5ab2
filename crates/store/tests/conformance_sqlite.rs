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
