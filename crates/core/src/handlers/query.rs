//! Questions about people: WHO (with WHOX), WHOIS, WHOWAS, ISON, USERHOST.

use chinwag_proto::Message;

use crate::numeric::*;
use crate::server::Server;

impl Server {
    pub(crate) fn handle_who(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["WHO", "Not implemented yet"]);
    }

    pub(crate) fn handle_whois(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["WHOIS", "Not implemented yet"]);
    }

    pub(crate) fn handle_whowas(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["WHOWAS", "Not implemented yet"]);
    }

    pub(crate) fn handle_ison(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["ISON", "Not implemented yet"]);
    }

    pub(crate) fn handle_userhost(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["USERHOST", "Not implemented yet"]);
    }
}
