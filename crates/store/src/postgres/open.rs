//! Connecting and opening: the URL, TLS, the refusals, and the migrations.
//!
//! Everything that can refuse a database (unreachable, not chinwag's, from a newer chinwag,
//! missing privileges) is decided inside the one transaction that also migrates, and a refusal
//! rolls it back: a refused database is left exactly as it was.

use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::error::SqlState;
use postgres::{Client, Config};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::schema::{LATEST, MIGRATIONS, TABLES};

/// The key of the advisory lock held while migrating ("chwg"), so that nodes starting together
/// migrate one after the other.
const MIGRATION_LOCK: i64 = 0x6368_7767;

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a PostgreSQL database could not be opened. Every message names the database (its URL
/// without the password) and what to do; the database itself is left untouched.
#[derive(Debug, thiserror::Error)]
pub enum PostgresOpenError {
    #[error("{url} is not a usable PostgreSQL URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach PostgreSQL at {url}: {}; check that it runs, the host, port, user, password and database name, and pg_hba.conf", super::describe(error))]
    Unreachable { url: String, error: postgres::Error },
    #[error("{url} has chinwag schema version {found}, created by a newer chinwag (this build knows up to version {known}); upgrade chinwag or use another database. Nothing was changed")]
    TooNew { url: String, found: i32, known: i32 },
    #[error("{url} already has tables of another program ({detail}) and no chinwag schema; nothing was changed. Use an empty database")]
    Foreign { url: String, detail: String },
    #[error("the PostgreSQL user {user} lacks privileges on {url} ({detail}); nothing was changed. Grant it CREATE on the schema for the first start, and SELECT, INSERT, UPDATE, DELETE on chinwag's tables (or make it their owner)")]
    Privileges { url: String, user: String, detail: String },
    #[error("{url}: {}", super::describe(error))]
    Postgres { url: String, error: postgres::Error },
    #[error("{url}: reading sslrootcert {path}: {reason}")]
    RootCert { url: String, path: String, reason: String },
}

/// What was asked for: the connection settings, the TLS connector, and the URL to show.
pub(super) struct Target {
    pub config: Config,
    pub tls: postgres_rustls::MakeTlsConnector,
    /// The URL with its password replaced by `***`, for messages and logs.
    pub shown: String,
}

/// Parses a `postgres://` URL (or a `key=value` connection string).
///
/// TLS follows libpq's `sslmode`: absent or `disable`, none; `prefer` and `require`, encrypted
/// without checking the server's certificate (as libpq does without a root certificate), unless
/// `sslrootcert=FILE` is given, which then must have signed it; `verify-ca` and `verify-full`,
/// checked against `sslrootcert` or, without it, the public web roots (`webpki-roots`), host
/// name included in both.
pub(super) fn target(url: &str) -> Result<Target, PostgresOpenError> {
    let shown = redact(url);
    let bad = |reason: String| PostgresOpenError::BadUrl { url: shown.clone(), reason };
    let (rest, params) = match url.split_once('?') {
        Some((rest, query)) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            (rest.to_owned(), query.split('&').filter(|p| !p.is_empty()).map(str::to_owned).collect::<Vec<_>>())
        }
        _ => (url.to_owned(), Vec::new()),
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for param in params {
        match param.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_owned()),
            Some(("sslrootcert", v)) => root = Some(v.to_owned()),
            _ => kept.push(param),
        }
    }
    let passed = if kept.is_empty() { rest } else { format!("{rest}?{}", kept.join("&")) };
    let mut config: Config = passed.parse().map_err(|e: postgres::Error| bad(e.to_string()))?;
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        // A key=value string: tokio-postgres parsed its sslmode (disable, prefer, require).
        mode = Some(
            match config.get_ssl_mode() {
                SslMode::Disable => "disable",
                SslMode::Prefer => "prefer",
                _ => "require",
            }
            .to_owned(),
        );
    }
    let verify = match mode.as_deref() {
        None | Some("disable") => {
            config.ssl_mode(SslMode::Disable);
            false
        }
        Some("prefer") => {
            config.ssl_mode(SslMode::Prefer);
            root.is_some()
        }
        Some("require") => {
            config.ssl_mode(SslMode::Require);
            root.is_some()
        }
        Some("verify-ca" | "verify-full") => {
            config.ssl_mode(SslMode::Require);
            true
        }
        Some(other) => {
            return Err(bad(format!("sslmode={other}: expected disable, prefer, require, verify-ca or verify-full")))
        }
    };
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("chinwag");
    }
    let tls = tls_connector(verify, root.as_deref()).map_err(|(path, reason)| PostgresOpenError::RootCert {
        url: shown.clone(),
        path,
        reason,
    })?;
    Ok(Target { config, tls, shown })
}

/// The URL with the password (`user:password@`, or `password=` in a query or a key=value string)
/// replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let start = scheme_end + 3;
        let authority_end = out[start..].find(['/', '?']).map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@') {
            let userinfo = &out[start..start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(start + colon + 1..start + at, "***");
            }
        }
    }
    // password=... in a query string or a key=value string.
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password=") {
        let boundary = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&' | b' ');
        result.push_str(&rest[..i + "password=".len()]);
        rest = &rest[i + "password=".len()..];
        if boundary {
            let end = rest.find(['&', ' ']).unwrap_or(rest.len());
            result.push_str("***");
            rest = &rest[end..];
        }
    }
    result.push_str(rest);
    result
}

/// A rustls connector: checking the server's certificate against `root` (a PEM file) or the
/// web roots when `verify`, accepting any certificate (still checking the handshake's
/// signature) otherwise. The error names the file and why.
fn tls_connector(verify: bool, root: Option<&str>) -> Result<postgres_rustls::MakeTlsConnector, (String, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| (String::new(), e.to_string()))?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match root {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| (path.to_owned(), e.to_string()))?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| (path.to_owned(), e.to_string()))?;
                    roots.add(cert).map_err(|e| (path.to_owned(), e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err((path.to_owned(), "no PEM certificate in it".to_owned()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert(provider))).with_no_client_auth()
    };
    Ok(postgres_rustls::MakeTlsConnector::new(tokio_rustls::TlsConnector::from(Arc::new(config))))
}

/// `sslmode=require` without a root certificate, as libpq: the connection is encrypted, the
/// server's certificate is not checked (the handshake's signature is).
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects, then checks and migrates the database in one transaction.
pub(super) fn open(target: &Target) -> Result<Client, PostgresOpenError> {
    let mut client = connect(target)?;
    migrate(&mut client, target)?;
    Ok(client)
}

/// One connection, with nothing checked.
pub(super) fn connect(target: &Target) -> Result<Client, PostgresOpenError> {
    target
        .config
        .connect(target.tls.clone())
        .map_err(|error| PostgresOpenError::Unreachable { url: target.shown.clone(), error })
}

/// Brings the schema up to [`LATEST`] inside one transaction that holds the migration lock.
fn migrate(client: &mut Client, target: &Target) -> Result<(), PostgresOpenError> {
    let url = || target.shown.clone();
    let fail = |source: postgres::Error| classify(client_user(target), url(), source);
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(fail)?;
    let has_version_table: bool =
        tx.query_one("SELECT to_regclass('chinwag_schema') IS NOT NULL", &[]).map_err(fail)?.get(0);
    let found: i32 = if has_version_table {
        tx.query_one("SELECT coalesce(max(version), 0) FROM chinwag_schema", &[]).map_err(fail)?.get(0)
    } else {
        0
    };
    if found > LATEST {
        return Err(PostgresOpenError::TooNew { url: url(), found, known: LATEST });
    }
    if !has_version_table {
        let names: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
        let present: Vec<String> = tx
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = ANY($1) ORDER BY 1",
                &[&names],
            )
            .map_err(fail)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if !present.is_empty() {
            return Err(PostgresOpenError::Foreign { url: url(), detail: format!("tables {}", present.join(", ")) });
        }
    }
    let pending = usize::try_from(found).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(pending) {
        tx.batch_execute(sql).map_err(fail)?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO chinwag_schema (version) VALUES ($1)", &[&version]).map_err(fail)?;
    }
    // The tables may be someone else's: the store must be able to read and write every one.
    let mut lacking = Vec::new();
    for table in TABLES {
        let ok: bool = tx
            .query_one(
                // One privilege per call: given several, it answers whether any is held.
                "SELECT has_table_privilege($1, 'SELECT') AND has_table_privilege($1, 'INSERT')
                    AND has_table_privilege($1, 'UPDATE') AND has_table_privilege($1, 'DELETE')",
                &[table],
            )
            .map_err(fail)?
            .get(0);
        if !ok {
            lacking.push(*table);
        }
    }
    if !lacking.is_empty() {
        return Err(PostgresOpenError::Privileges {
            url: url(),
            user: client_user(target),
            detail: format!("cannot read and write {}", lacking.join(", ")),
        });
    }
    tx.commit().map_err(fail)
}

/// The user name to show in messages.
fn client_user(target: &Target) -> String {
    target.config.get_user().unwrap_or("(default)").to_owned()
}

/// Turns an error met while opening into the refusal it means.
fn classify(user: String, url: String, source: postgres::Error) -> PostgresOpenError {
    match source.code() {
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => {
            let detail = source.as_db_error().map_or_else(|| source.to_string(), |e| e.message().to_owned());
            PostgresOpenError::Privileges { url, user, detail }
        }
        _ if source.is_closed() => PostgresOpenError::Unreachable { url, error: source },
        _ => PostgresOpenError::Postgres { url, error: source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db?password=secret&x=1"), "postgres://u@h/db?password=***&x=1");
        assert_eq!(redact("host=h password=secret user=u"), "host=h password=*** user=u");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn sslmode_is_read_from_the_url() {
        let t = target("postgres://u@127.0.0.1/db").expect("plain");
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        let t = target("postgres://u@127.0.0.1/db?sslmode=require&application_name=x").expect("require");
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert!(matches!(target("postgres://u@h/db?sslmode=bogus"), Err(PostgresOpenError::BadUrl { .. })));
        assert!(matches!(
            target("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent"),
            Err(PostgresOpenError::RootCert { .. })
        ));
    }
}
