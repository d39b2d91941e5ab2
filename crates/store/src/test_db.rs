//! Throwaway PostgreSQL databases for tests: each [`TestDatabase`] is a database with a random
//! name, created on the server that `CHINWAG_TEST_POSTGRES` names (default
//! [`DEFAULT_TEST_SERVER`]) and dropped when the guard is dropped, also when the test panics.
//! Tests that use them can run in parallel.
//!
//! Connecting runs on a thread of its own, so a guard may be made and dropped on an async
//! runtime's thread too.

use std::sync::atomic::{AtomicU64, Ordering};

/// The PostgreSQL server tests use when `CHINWAG_TEST_POSTGRES` is not set: trust
/// authentication on loopback, a `test` database to connect to, `CREATE DATABASE` allowed.
pub const DEFAULT_TEST_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh, empty database, dropped with the guard.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a database with a random name. Panics, saying what the tests need, if the
    /// server cannot be reached.
    pub fn create() -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let admin = std::env::var("CHINWAG_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_TEST_SERVER.to_owned());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("chinwag_test_{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed));
        let url = with_database(&admin, &name);
        let statement = format!("CREATE DATABASE {name}");
        if let Err(e) = admin_run(&admin, &statement) {
            panic!(
                "these tests need PostgreSQL at {} (set CHINWAG_TEST_POSTGRES to another server where \
                 CREATE DATABASE is allowed): {e}",
                crate::redact_url(&admin)
            );
        }
        TestDatabase { admin, name, url }
    }

    /// The database's URL, for [`crate::PostgresStore::open`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the server's database the tests connect to first (`CHINWAG_TEST_POSTGRES`).
    pub fn admin_url(&self) -> &str {
        &self.admin
    }

    /// Runs SQL on this database (as the test server's user), for setting up refusals.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        admin_run(&self.url, sql)
    }

    /// Runs SQL on the test server's own database (`CHINWAG_TEST_POSTGRES`), e.g. to change
    /// this database from outside it.
    pub fn admin_execute(&self, sql: &str) -> Result<(), String> {
        admin_run(&self.admin, sql)
    }

    /// The first column of every row `sql` returns on this database, as text (`NULL` as `None`).
    pub fn query(&self, sql: &str) -> Result<Vec<Option<String>>, String> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        std::thread::spawn(move || -> Result<Vec<Option<String>>, String> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
            let messages = client.simple_query(&sql).map_err(|e| e.to_string())?;
            Ok(messages
                .iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
                    _ => None,
                })
                .collect())
        })
        .join()
        .map_err(|_| "the thread running SQL panicked".to_owned())?
    }

    /// This database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin_run(&self.admin, &statement) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// `url` with its database name replaced by `name` (a `postgres://` URL, or a key=value string).
pub fn with_database(url: &str, name: &str) -> String {
    if let Some(start) = url.find("://").map(|i| i + 3) {
        let path = url[start..].find('/').map(|i| start + i);
        let query = url[start..].find('?').map(|i| start + i);
        match (path, query) {
            (Some(p), Some(q)) if p < q => format!("{}/{name}{}", &url[..p], &url[q..]),
            (Some(p), None) => format!("{}/{name}", &url[..p]),
            (_, Some(q)) => format!("{}/{name}{}", &url[..q], &url[q..]),
            (None, None) => format!("{url}/{name}"),
        }
    } else {
        format!("{url} dbname={name}")
    }
}

/// Runs `sql` on the database at `url`, on a thread of its own (the client runs a small async
/// runtime, which must not be started inside another).
fn admin_run(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || -> Result<(), String> {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
        client.batch_execute(&sql).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "the thread running SQL panicked".to_owned())?
}
