//! Reload (`chinwag admin reload`, SIGHUP, REHASH): re-read the configuration and apply what can
//! change while running: the MOTD, the server password, the limits, the operators and the TLS
//! certificate. Anything else that changed is reported as needing a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::hub::HubCall;
use crate::tls::CertSwap;
use crate::ServerConfig;

/// What reload needs: where the configuration came from, what is running now, and where to
/// apply the result.
#[derive(Debug)]
pub(crate) struct Reloader {
    /// The configuration in force (its `source` says how to read it again).
    current: Mutex<ServerConfig>,
    certs: Arc<CertSwap>,
    hub: mpsc::Sender<HubCall>,
}

impl Reloader {
    pub fn new(current: ServerConfig, certs: Arc<CertSwap>, hub: mpsc::Sender<HubCall>) -> Self {
        Reloader { current: Mutex::new(current), certs, hub }
    }

    /// Re-reads and applies; returns a summary for the operator. `by` says who asked (for the
    /// audit log). Fails without changing anything if the new configuration is invalid.
    pub async fn reload(&self, by: &str) -> Result<String> {
        let old = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let result = self.reload_from(&old).await;
        match &result {
            Ok(summary) => tracing::info!(target: "audit", %by, %summary, "configuration reloaded"),
            Err(e) => tracing::warn!(target: "audit", %by, error = %format!("{e:#}"), "configuration reload failed"),
        }
        result
    }

    async fn reload_from(&self, old: &ServerConfig) -> Result<String> {
        let source = old.source.clone();
        let mut new = match source {
            Some(source) => {
                tokio::task::spawn_blocking(move || source.load()).await.context("reading the configuration")??
            }
            None => old.clone(),
        };
        let mut restart = Vec::new();
        let same = |a: bool, what: &str, restart: &mut Vec<String>| {
            if !a {
                restart.push(what.to_owned());
            }
        };
        same(new.data_dir == old.data_dir, "data_dir", &mut restart);
        let listeners = |c: &ServerConfig| (c.listen.clone(), c.tls_listen.clone(), c.quic_listen.clone());
        same(listeners(&new) == listeners(old), "listen", &mut restart);
        same(new.metrics_listen == old.metrics_listen, "listen.metrics", &mut restart);
        same(new.core.server_name == old.core.server_name, "server.name", &mut restart);
        same(new.core.default_channels == old.core.default_channels, "server.default_rooms", &mut restart);
        same(new.limits == old.limits, "the connection limits (limits.sendq, limits.max_connections, …)", &mut restart);
        same(new.log == old.log, "log", &mut restart);
        same(new.sqlite.synchronous == old.sqlite.synchronous, "storage", &mut restart);

        let names = vec![old.core.server_name.clone()];
        let (dir, cert, key) = (old.data_dir.clone(), new.tls_cert.clone(), new.tls_key.clone());
        let certs = self.certs.clone();
        let fingerprint =
            tokio::task::spawn_blocking(move || certs.reload(&dir, cert.as_deref(), key.as_deref(), &names))
                .await
                .context("reloading the TLS certificate")??;
        new.core.motd = motd(&new)?;
        new.core.motd.push(format!("TLS certificate SHA-256 fingerprint: {fingerprint}"));

        let core = new.core.clone();
        crate::hub::call(&self.hub, move |hub| hub.server.reconfigure(core)).await.context("the server is stopping")?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = new;
        let mut summary = format!("reloaded MOTD, limits, password, operators and TLS certificate ({fingerprint})");
        if !restart.is_empty() {
            summary.push_str(&format!("; changes to {} need a restart", restart.join(", ")));
        }
        Ok(summary)
    }
}

/// The MOTD lines: from `motd_file` if set, else the configured lines.
pub(crate) fn motd(cfg: &ServerConfig) -> Result<Vec<String>> {
    match &cfg.motd_file {
        Some(path) => read_motd(path),
        None => Ok(cfg.core.motd.clone()),
    }
}

fn read_motd(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the MOTD file {}", path.display()))?;
    Ok(text.lines().map(|l| l.chars().filter(|c| !c.is_control()).collect()).collect())
}
