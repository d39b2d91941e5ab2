//! One file per command family; each adds `handle_*` methods to [`crate::Server`].

pub(crate) mod account;
mod certfp;
mod channel;
pub(crate) mod e2e;
pub(crate) mod events;
pub(crate) mod history;
mod info;
mod list;
pub(crate) mod markread;
pub(crate) mod messaging;
pub(crate) mod moderation;
pub(crate) mod multiline;
pub(crate) mod offline;
pub(crate) mod oper;
mod query;
pub(crate) mod redact;
mod registration;
pub(crate) mod sasl;
mod user;
