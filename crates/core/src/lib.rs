//! The chinwag server's core: the whole IRC server as a state machine.
//!
//! What it is: [`Server`] owns every client, nick and room. The edge calls [`Server::connect`],
//! [`Server::handle`] (one parsed line), [`Server::disconnect`] and [`Server::tick`], each with
//! the current time, and then carries out the [`Effect`]s the call left behind (send these bytes
//! to that connection, close that one).
//!
//! What it is not: it does no I/O, reads no clock and draws no random numbers. Sockets, TLS,
//! timers and storage live in `chinwag-server`. That is what lets most of the server's
//! behaviour be tested as lines in, lines out (see `tests/`).
//!
//! Layout: `server.rs` holds the state, the entry points and the reply plumbing
//! (labeled-response, fan-out); `handlers/` has one file per command family; `broadcast.rs`
//! serializes an event once per capability variant; `numeric.rs` is the table of numerics;
//! `keys.rs` has the end-to-end encryption key directory's requests (handled in `handlers/e2e.rs`);
//! `scram.rs` the SASL SCRAM-SHA-256 credentials and message arithmetic; `cluster/` the
//! network replica, events and nick claims of cluster mode (`docs/cluster.md`).

mod broadcast;
mod caps;
mod channel;
mod client;
mod cluster;
mod config;
mod confusable;
mod directory;
mod flood;
mod handlers;
mod ids;
pub mod keys;
mod numeric;
mod pending;
pub mod scram;
mod server;
mod sessions;
mod store;
mod text;
mod throttle;

pub use caps::{Cap, CapSet, ALL_CAPS};
pub use chinwag_proto::rfc3339_ms;
pub use client::ConnInfo;
pub use cluster::{
    node_gone_event, read_node_gone, AppendError, AppendId, ClaimAnswer, ClaimRequest, ClusterEffect, ClusterIdentity,
    Expect, LogKey, Topic, UserId, MAX_PAYLOAD,
};
pub use config::{AccountSettings, Config, Limits, Operator, Rate, MAX_MULTILINE_BYTES, MAX_MULTILINE_LINES};
pub use directory::PublicRoom;
pub use flood::Bucket as TokenBucket;
pub use handlers::account::MAX_PASSWORD_LEN;
pub use handlers::history::MAX_HISTORY;
pub use handlers::markread::MAX_READ_MARKERS;
pub use handlers::oper::{Counts, Kline, RoomView, UserView};
pub use ids::{BuildConnHasher, ConnHasher, ConnId, ConnMap, MsgIdGen};
pub use server::{Effect, Now, Server};
pub use store::{
    dm_conversation, Bound, CertAnswer, CertRequest, ChannelSnapshot, Failure, HistoryItem, HistoryQuery, MarkerSet,
    Request, RequestId, Response, ScramLookup,
};
pub use throttle::{subnet_of, ADDRESS_SHARE};
