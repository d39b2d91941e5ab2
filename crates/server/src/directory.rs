//! The server's side of LAN discovery: what it announces, and the responder's start.
//!
//! The hub owns the rooms, so it publishes a [`Live`] snapshot (public rooms, users online)
//! through a `watch` channel once a tick; the responder (in `chinwag-discovery`) answers from
//! the latest snapshot without ever touching the hub. Secret rooms never enter the snapshot.

use std::net::SocketAddr;
use std::sync::Arc;

use chinwag_core::Server;
use chinwag_discovery::{Listener, Live, Responder, Room, ServerInfo, Stats, Transport};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ServerConfig;

/// Rooms kept in the snapshot at most (the biggest ones); answers page through them.
const MAX_ANNOUNCED_ROOMS: usize = 1000;

/// The public part of the server's state, as discovery announces it.
pub(crate) fn live(server: &Server) -> Live {
    let rooms = server
        .public_rooms(MAX_ANNOUNCED_ROOMS)
        .into_iter()
        .map(|r| Room {
            name: r.name,
            topic: r.topic.unwrap_or_default(),
            members: u32::try_from(r.members).unwrap_or(u32::MAX),
            invite_only: r.invite_only,
            key_required: r.key_required,
        })
        .collect();
    Live { rooms, users_online: u32::try_from(server.users_online()).unwrap_or(u32::MAX) }
}

/// Every listener, as discovery announces it.
pub(crate) fn listeners(plaintext: &[SocketAddr], tls: &[SocketAddr], quic: &[SocketAddr]) -> Vec<Listener> {
    let of = |transport: Transport, addrs: &[SocketAddr]| -> Vec<Listener> {
        addrs.iter().map(|a| Listener { transport, addr: *a }).collect()
    };
    [of(Transport::Plaintext, plaintext), of(Transport::Tls, tls), of(Transport::Quic, quic)].concat()
}

/// Binds and spawns the responder if discovery is on (`server` as restored, not yet running).
/// Returns the channel the hub publishes to, the UDP port bound and the responder's counters.
/// Discovery is a convenience: if it cannot start, the server runs without it and says why.
pub(crate) fn start(
    cfg: &ServerConfig,
    server: &Server,
    listeners: Vec<Listener>,
    fingerprint: &str,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Option<(watch::Sender<Live>, u16, Arc<Stats>)> {
    if !cfg.discovery.enabled {
        return None;
    }
    let info = ServerInfo {
        name: cfg.core.server_name.clone(),
        version: cfg.core.version.clone(),
        listeners,
        fingerprint: chinwag_discovery::wire::parse_fingerprint(fingerprint),
    };
    // The rooms restored at start are announced from the first probe on, before the hub's
    // first tick.
    let (tx, rx) = watch::channel(live(server));
    match Responder::bind(&cfg.discovery, info, rx) {
        Ok(responder) => {
            let (port, stats) = (responder.port(), responder.stats());
            tracker.spawn(responder.run(shutdown.clone()));
            Some((tx, port, stats))
        }
        Err(e) => {
            tracing::warn!(error = %e, "LAN discovery is off: its UDP socket cannot be opened");
            None
        }
    }
}
