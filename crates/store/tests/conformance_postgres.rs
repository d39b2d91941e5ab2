//! The backend conformance suite against [`PostgresStore`], one fresh database per check, on the
//! server `CHINWAG_TEST_POSTGRES` names (default `postgres://postgres@127.0.0.1:5432/test`).

use chinwag_store::test_db::TestDatabase;
use chinwag_store::{conformance, PostgresStore};

/// Each check gets a database of its own, dropped at the end of the test (also if a check fails).
#[test]
fn postgres_passes_run_all() {
    let mut databases = Vec::new();
    conformance::run_all(|| {
        let db = TestDatabase::create();
        let store = PostgresStore::open(db.url()).expect("open a fresh database");
        databases.push(db);
        store
    });
}

/// Four connections to one database claim one device's one-time keys at once: each key goes out
/// once.
#[test]
fn postgres_hands_out_each_one_time_key_once_under_concurrent_claims() {
    let db = TestDatabase::create();
    conformance::concurrent_claims(|| PostgresStore::open(db.url()).expect("open the shared database"));
}
