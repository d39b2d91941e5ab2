//! Room moderation: MODE (user and channel modes), KICK, INVITE.

use chinwag_proto::Message;

use crate::numeric::*;
use crate::server::Server;

impl Server {
    pub(crate) fn handle_mode(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["MODE", "Not implemented yet"]);
    }

    pub(crate) fn handle_kick(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["KICK", "Not implemented yet"]);
    }

    pub(crate) fn handle_invite(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["INVITE", "Not implemented yet"]);
    }
}
