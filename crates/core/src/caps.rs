//! IRCv3 capabilities the server offers, and the set a client has enabled.

/// One capability. The discriminant is its bit in [`CapSet`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Cap {
    MessageTags,
    ServerTime,
    EchoMessage,
    MultiPrefix,
    ExtendedJoin,
    /// MONITOR watchers hear of away, account and real-name changes like peers do.
    ExtendedMonitor,
    AwayNotify,
    CapNotify,
    Batch,
    LabeledResponse,
    AccountTag,
    AccountNotify,
    Setname,
    UserhostInNames,
    InviteNotify,
    Sasl,
    AccountRegistration,
    ChatHistory,
    /// chinwag's end-to-end encryption key directory (`E2E`, docs/e2e.md).
    E2e,
    /// `MARKREAD`: read markers, synced across an account's connections.
    ReadMarker,
    /// `REDACT`: deleting a message.
    MessageRedaction,
    /// IRCv3 draft/multiline: messages of several lines sent and received as one batch
    /// (`handlers/multiline.rs`). Its value, the bounds, comes from the configuration.
    Multiline,
    /// IRCv3 draft/event-playback: CHATHISTORY also returns a room's JOIN, PART, QUIT, KICK,
    /// TOPIC, MODE and NICK (`handlers/events.rs`).
    EventPlayback,
}

/// Every capability with its wire name, in the order `CAP LS` lists them.
pub const ALL_CAPS: &[(Cap, &str)] = &[
    (Cap::AccountNotify, "account-notify"),
    (Cap::AccountTag, "account-tag"),
    (Cap::AwayNotify, "away-notify"),
    (Cap::Batch, "batch"),
    (Cap::CapNotify, "cap-notify"),
    (Cap::E2e, crate::keys::E2E_CAP),
    (Cap::AccountRegistration, "draft/account-registration"),
    (Cap::ChatHistory, "draft/chathistory"),
    (Cap::MessageRedaction, "draft/message-redaction"),
    (Cap::ReadMarker, "draft/read-marker"),
    (Cap::EventPlayback, "draft/event-playback"),
    (Cap::Multiline, "draft/multiline"),
    (Cap::EchoMessage, "echo-message"),
    (Cap::ExtendedJoin, "extended-join"),
    (Cap::ExtendedMonitor, "extended-monitor"),
    (Cap::InviteNotify, "invite-notify"),
    (Cap::LabeledResponse, "labeled-response"),
    (Cap::MessageTags, "message-tags"),
    (Cap::MultiPrefix, "multi-prefix"),
    (Cap::Sasl, "sasl"),
    (Cap::ServerTime, "server-time"),
    (Cap::Setname, "setname"),
    (Cap::UserhostInNames, "userhost-in-names"),
];

impl Cap {
    pub fn from_name(name: &str) -> Option<Cap> {
        ALL_CAPS.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(c, _)| *c)
    }

    pub fn name(self) -> &'static str {
        ALL_CAPS.iter().find(|(c, _)| *c == self).map_or("", |(_, n)| n)
    }

    /// The value shown by `CAP LS 302` to a connection, TLS or not: SASL EXTERNAL is offered only
    /// where a client certificate can be.
    pub fn value_for(self, tls: bool) -> Option<&'static str> {
        match self {
            Cap::Sasl if tls => Some(crate::handlers::sasl::MECHANISMS_TLS),
            _ => self.value(),
        }
    }

    /// The value shown by `CAP LS 302`, if any. `draft/account-registration`'s and
    /// `draft/multiline`'s come from the configuration ([`crate::AccountSettings::cap_value`],
    /// [`crate::Limits::multiline_cap_value`]).
    pub fn value(self) -> Option<&'static str> {
        match self {
            Cap::Sasl => Some(crate::handlers::sasl::MECHANISMS),
            Cap::AccountRegistration | Cap::Multiline => None,
            _ => None,
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The capabilities one client has enabled.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CapSet(u32);

impl CapSet {
    pub fn has(self, cap: Cap) -> bool {
        self.0 & cap.bit() != 0
    }

    pub fn insert(&mut self, cap: Cap) {
        self.0 |= cap.bit();
    }

    pub fn remove(&mut self, cap: Cap) {
        self.0 &= !cap.bit();
    }

    /// Whether multiline messages reach this client as one `draft/multiline` batch: it needs
    /// `batch` as well, which the specification depends on.
    pub fn multiline(self) -> bool {
        self.has(Cap::Multiline) && self.has(Cap::Batch)
    }

    pub fn names(self) -> Vec<&'static str> {
        ALL_CAPS.iter().filter(|(c, _)| self.has(*c)).map(|(_, n)| *n).collect()
    }
}
