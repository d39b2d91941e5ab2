//! One file per command family; each adds `handle_*` methods to [`crate::Server`].

mod channel;
mod messaging;
mod moderation;
mod query;
mod registration;
mod user;
