//! LAN discovery by multicast, and the UDP status query.
//!
//! What it is: how chinwag servers on a LAN are found without typing an address. A client
//! multicasts a small *probe*; every server that hears it answers, by unicast, with one
//! datagram: its name and version, how to reach it (listeners by transport), its TLS
//! certificate's fingerprint, its public rooms with topic and member count, and how many users
//! are online. `chinwag status HOST` sends the same probe to one server by unicast.
//!
//! What it is not: authenticated. Anyone on the LAN can answer a probe, so a fingerprint
//! learned here may be shown and pinned on first use, but must never replace a fingerprint the
//! client already pinned. Nothing private is announced: secret rooms are not in what the server
//! publishes, and there is no login.
//!
//! Abuse: an answer is never larger than the probe that asked for it (probes are padded, see
//! [`wire::PROBE_LEN`]), answers are rate limited per source and in total ([`RateLimits`]),
//! only sources on the allowed interfaces' networks (and loopback) are answered, and anything
//! that is not a well-formed probe of this version is ignored.
//!
//! Layout: `wire.rs` is the format (also in `docs/discovery.md`), `limit.rs` the token
//! buckets, `iface.rs` the interfaces and the source check, `responder.rs` the server side,
//! `client.rs` the asking side. With the `netns` feature, [`netns`] has the network-namespace
//! helpers the end-to-end tests use.
//!
//! # For clients (`chinwag discover`, the terminal client's `/discover`)
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use std::time::Duration;
//! for server in chinwag_discovery::discover(Duration::from_secs(2)).await? {
//!     // Connect to `server.tls_addr()`, showing `server.fingerprint` (pinning rules apply).
//!     println!("{} at {:?}: {} rooms", server.name, server.tls_addr(), server.rooms_total);
//! }
//! let one = chinwag_discovery::status("192.168.1.5", Duration::from_secs(2)).await;
//! # let _ = one;
//! # Ok(())
//! # }
//! ```
//!
//! # For servers
//!
//! Bind a [`Responder`] with a [`ResponderConfig`], the fixed [`ServerInfo`] and a `watch`
//! receiver of [`Live`] (rooms and users, published by the hub), then spawn
//! [`Responder::run`] with the server's shutdown token.

mod client;
mod iface;
mod limit;
#[cfg(feature = "netns")]
pub mod netns;
mod responder;
pub mod wire;

use std::net::{Ipv4Addr, Ipv6Addr};

pub use client::{
    discover, discover_with, status, status_addr, DiscoverOptions, Found, StatusError, MAX_FOUND, MAX_STATUS_PAGES,
};
pub use limit::RateLimits;
pub use responder::{Live, Responder, ResponderConfig, ServerInfo, Stats};
pub use wire::{Listener, Room, Transport};

/// The UDP port probes go to.
pub const DEFAULT_PORT: u16 = 12348;
/// IPv4 group: in 239.255.0.0/16, the organization-local scope (RFC 2365), so routers keep it
/// on the site.
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 12, 48);
/// IPv6 group: link-local scope (`ff02::`), group id spelling "chat" in ASCII.
pub const DEFAULT_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0x6368, 0x6174);
/// The group older setups (the student projects chinwag grew from) use.
pub const LEGACY_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 1, 1, 1);
