//! Copying a SQLite store into an empty PostgreSQL one (`chinwag admin migrate-store`):
//! accounts with their password hashes, SCRAM credentials and certificate fingerprints, rooms
//! with their lists, history with its conversations and parties, offline queues, and the
//! end-to-end encryption key directory, read markers and redactions, row for row, in one PostgreSQL transaction that checks
//! every table's count before it commits.
//!
//! The source is opened as the server would (refusals, pending migrations), then read through
//! a read-only connection; the target is opened as the server would too (created or migrated,
//! refused if unusable) and must hold no data. The two schemas have the same tables and columns
//! (see `postgres/schema.rs`), so the copy is table by table, in batches of arrays.

use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::ValueRef;

use crate::{OpenError, PostgresOpenError, PostgresStore, SqliteOptions, SqliteStore};

/// Rows read from SQLite and inserted into PostgreSQL per statement.
const BATCH: usize = 10_000;

/// The type of a column, as both schemas store it.
#[derive(Copy, Clone, Debug)]
enum Kind {
    Int,
    Text,
    /// SQLite text that may hold NUL, `bytea` in PostgreSQL (conversation keys).
    Bytes,
    /// SQLite 0 or 1, `boolean` in PostgreSQL.
    Bool,
}

use Kind::{Bool, Bytes, Int, Text};

/// A column's name and type.
type Columns = &'static [(&'static str, Kind)];

/// A table as copied: its name, its columns, and whether it has an identity column.
type Table = (&'static str, Columns, bool);

/// Every table, in an order that satisfies the foreign keys, with its columns and whether it
/// has an identity column (`id`) whose values are copied and whose sequence is moved past them.
const TABLES: &[Table] = &[
    (
        "accounts",
        &[
            ("folded", Text),
            ("name", Text),
            ("password_hash", Text),
            ("email", Text),
            ("created_ms", Int),
            ("scram", Text),
        ],
        false,
    ),
    ("account_certs", &[("fingerprint", Text), ("account", Text)], false),
    (
        "channels",
        &[
            ("folded", Text),
            ("name", Text),
            ("created_ms", Int),
            ("topic_text", Text),
            ("topic_setter", Text),
            ("topic_set_at_ms", Int),
            ("modes", Text),
            ("channel_key", Text),
            ("user_limit", Int),
            ("founder", Text),
        ],
        false,
    ),
    (
        "channel_bans",
        &[("channel", Text), ("position", Int), ("mask", Text), ("setter", Text), ("set_at_ms", Int), ("kind", Text)],
        false,
    ),
    ("conversations", &[("id", Int), ("key", Bytes)], true),
    ("conversation_parties", &[("party", Text), ("conversation", Int)], false),
    (
        "messages",
        &[
            ("id", Int),
            ("conversation", Int),
            ("msgid", Text),
            ("time_ms", Int),
            ("command", Text),
            ("sender", Text),
            ("sender_account", Text),
            ("target", Text),
            ("text", Text),
            ("tags", Text),
            ("redacted", Bool),
        ],
        true,
    ),
    (
        "offline",
        &[
            ("account", Text),
            ("time_ms", Int),
            ("msgid", Text),
            ("conversation", Int),
            ("command", Text),
            ("sender", Text),
            ("sender_account", Text),
            ("target", Text),
            ("text", Text),
            ("tags", Text),
        ],
        false,
    ),
    (
        "e2e_devices",
        &[
            ("account", Text),
            ("device", Text),
            ("curve25519", Text),
            ("ed25519", Text),
            ("signature", Text),
            ("fallback_key", Text),
            ("fallback_signature", Text),
        ],
        false,
    ),
    (
        "e2e_one_time_keys",
        &[("id", Int), ("account", Text), ("device", Text), ("key", Text), ("signature", Text)],
        true,
    ),
    ("read_markers", &[("account", Text), ("target", Text), ("time_ms", Int)], false),
];

/// Why a migration stopped. Nothing was committed to the target.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the source: {0}")]
    Source(#[from] OpenError),
    #[error("the target: {0}")]
    Target(#[from] PostgresOpenError),
    #[error("the target {url} already holds data ({detail}); migrate into an empty database. Nothing was changed")]
    TargetNotEmpty { url: String, detail: String },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("writing to {url}: {source}")]
    Write {
        url: String,
        #[source]
        source: postgres::Error,
    },
    #[error("{table}: {source_rows} rows in the source but {target_rows} in the target; nothing was committed")]
    CountMismatch { table: &'static str, source_rows: i64, target_rows: i64 },
}

/// How many rows of each table were copied (and counted on both sides).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub tables: Vec<(&'static str, i64)>,
}

impl MigrationReport {
    /// Rows copied from `table`.
    pub fn rows(&self, table: &str) -> i64 {
        self.tables.iter().find(|(t, _)| *t == table).map_or(0, |(_, n)| *n)
    }
}

/// Copies the SQLite store at `sqlite_path` into the empty PostgreSQL database at `url`.
///
/// Blocking: run it on a thread of its own, never on an async runtime's. The server using the
/// SQLite file should be stopped, so that the copy is of its last state.
pub fn sqlite_to_postgres(sqlite_path: &Path, url: &str) -> Result<MigrationReport, MigrateError> {
    // Opened as the server would: refused if unusable, brought to the current schema.
    drop(SqliteStore::open(sqlite_path, SqliteOptions::default())?);
    let path = sqlite_path.display().to_string();
    let read = |source| MigrateError::Read { path: path.clone(), source };
    let source =
        rusqlite::Connection::open_with_flags(sqlite_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(read)?;
    // One read transaction: every table from the same moment.
    source.execute_batch("BEGIN").map_err(read)?;

    let target = PostgresStore::open(url)?;
    let shown = target.url().to_owned();
    drop(target);
    let write = |source| MigrateError::Write { url: shown.clone(), source };
    let mut client = crate::postgres::connect_for_migration(url)?;
    let mut tx = client.transaction().map_err(write)?;
    let mut busy = Vec::new();
    for (table, _, _) in TABLES {
        let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {table}"), &[]).map_err(write)?.get(0);
        if n > 0 {
            busy.push(format!("{table}: {n} rows"));
        }
    }
    if !busy.is_empty() {
        return Err(MigrateError::TargetNotEmpty { url: shown.clone(), detail: busy.join(", ") });
    }

    let mut report = MigrationReport::default();
    for &(table, columns, identity) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let casts: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                let ty = match kind {
                    Int => "bigint",
                    Text => "text",
                    Bytes => "bytea",
                    Bool => "boolean",
                };
                format!("${}::{ty}[]", i + 1)
            })
            .collect();
        let overriding = if identity { " OVERRIDING SYSTEM VALUE" } else { "" };
        let insert = format!(
            "INSERT INTO {table} ({}){overriding} SELECT * FROM unnest({})",
            names.join(", "),
            casts.join(", ")
        );
        let insert = tx.prepare(&insert).map_err(write)?;
        let mut statement = source.prepare(&select).map_err(read)?;
        let mut rows = statement.query([]).map_err(read)?;
        let mut batch = Batch::new(columns);
        let mut copied: i64 = 0;
        loop {
            let row = rows.next().map_err(read)?;
            if let Some(row) = row {
                batch.push(row).map_err(read)?;
            }
            if batch.len == BATCH || (row.is_none() && batch.len > 0) {
                tx.execute(&insert, &batch.params()).map_err(write)?;
                copied += batch.len as i64;
                batch = Batch::new(columns);
            }
            if row.is_none() {
                break;
            }
        }
        let source_rows: i64 =
            source.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).map_err(read)?;
        let target_rows: i64 = tx.query_one(&format!("SELECT count(*) FROM {table}"), &[]).map_err(write)?.get(0);
        if source_rows != target_rows || copied != target_rows {
            return Err(MigrateError::CountMismatch { table, source_rows, target_rows });
        }
        if identity {
            // New rows continue after the copied ids.
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
                ),
                &[],
            )
            .map_err(write)?;
        }
        report.tables.push((table, target_rows));
    }
    tx.commit().map_err(write)?;
    Ok(report)
}

/// One batch of rows, as one array per column.
struct Batch {
    columns: Vec<Column>,
    len: usize,
}

enum Column {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Bool(Vec<Option<bool>>),
}

impl Batch {
    fn new(kinds: &[(&str, Kind)]) -> Batch {
        let columns = kinds
            .iter()
            .map(|(_, kind)| match kind {
                Int => Column::Int(Vec::with_capacity(BATCH)),
                Text => Column::Text(Vec::with_capacity(BATCH)),
                Bytes => Column::Bytes(Vec::with_capacity(BATCH)),
                Bool => Column::Bool(Vec::with_capacity(BATCH)),
            })
            .collect();
        Batch { columns, len: 0 }
    }

    fn push(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        for (i, column) in self.columns.iter_mut().enumerate() {
            let value = row.get_ref(i)?;
            let null = matches!(value, ValueRef::Null);
            match column {
                Column::Int(v) => v.push(if null { None } else { Some(value.as_i64()?) }),
                Column::Text(v) => {
                    v.push(if null { None } else { Some(String::from_utf8_lossy(value.as_bytes()?).into_owned()) })
                }
                Column::Bytes(v) => v.push(if null { None } else { Some(value.as_bytes()?.to_vec()) }),
                Column::Bool(v) => v.push(if null { None } else { Some(value.as_i64()? != 0) }),
            }
        }
        self.len += 1;
        Ok(())
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.columns
            .iter()
            .map(|c| match c {
                Column::Int(v) => v as &(dyn ToSql + Sync),
                Column::Text(v) => v as &(dyn ToSql + Sync),
                Column::Bytes(v) => v as &(dyn ToSql + Sync),
                Column::Bool(v) => v as &(dyn ToSql + Sync),
            })
            .collect()
    }
}
