//! Logging set-up for the binary: human-readable events on stderr, the same to a daily file in
//! `DATA_DIR/logs` (text or JSON lines), and security events (`target: "audit"`: registrations,
//! logins, operator actions, kills, bans, reloads) also to their own daily `audit.log` file.
//!
//! Nothing here decides what is logged: the rule that passwords, SASL payloads and tokens are
//! never logged is kept by the code that emits events, and tested on the files.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::LogSettings;

/// The directory inside the data directory.
pub const LOG_DIR: &str = "logs";

/// Keep it alive for as long as the process logs: dropping it flushes the files.
#[derive(Debug)]
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
}

fn filter(level: &str) -> EnvFilter {
    // rustls warns on every client that sends an IP address as SNI (irssi and WeeChat do when
    // connecting by address); that is harmless, so its warnings are quieted by default.
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{level},rustls=error")))
}

/// Installs the global subscriber. Call once, after the configuration is known to be valid.
pub fn init(settings: &LogSettings, data_dir: &Path) -> Result<LogGuard> {
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter(&settings.level));
    let mut guards = Vec::new();
    let mut files: Vec<Box<dyn Layer<_> + Send + Sync>> = Vec::new();
    if settings.file {
        let dir = data_dir.join(LOG_DIR);
        // 0700, so that log files (which name users and addresses) are the owner's alone even
        // if created with a looser mode; old ones are tightened too.
        crate::files::private_dir(&dir).context("creating the log directory")?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                crate::files::tighten(&entry.path(), crate::files::FILE_MODE)?;
            }
        }
        let appender = |prefix: &str| {
            Builder::new()
                .rotation(Rotation::DAILY)
                .filename_prefix(prefix)
                .filename_suffix("log")
                .max_log_files(settings.keep_days as usize)
                .build(&dir)
                .with_context(|| format!("opening the {prefix} log in {}", dir.display()))
        };
        let (main, guard) = tracing_appender::non_blocking(appender("chinwag")?);
        guards.push(guard);
        let (audit, guard) = tracing_appender::non_blocking(appender("audit")?);
        guards.push(guard);
        let audit_only = Targets::new().with_target("audit", tracing::Level::INFO);
        if settings.json {
            files.push(
                tracing_subscriber::fmt::layer().json().with_writer(main).with_filter(filter(&settings.level)).boxed(),
            );
            files.push(tracing_subscriber::fmt::layer().json().with_writer(audit).with_filter(audit_only).boxed());
        } else {
            files.push(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(main)
                    .with_filter(filter(&settings.level))
                    .boxed(),
            );
            files.push(
                tracing_subscriber::fmt::layer().with_ansi(false).with_writer(audit).with_filter(audit_only).boxed(),
            );
        }
    }
    tracing_subscriber::registry().with(stderr).with(files).try_init().context("setting up logging")?;
    Ok(LogGuard { _guards: guards })
}
