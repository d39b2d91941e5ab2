//! A client's own presence: AWAY, SETNAME, MONITOR.

use chinwag_proto::Message;

use crate::numeric::*;
use crate::server::Server;

impl Server {
    pub(crate) fn handle_away(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["AWAY", "Not implemented yet"]);
    }

    pub(crate) fn handle_setname(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["SETNAME", "Not implemented yet"]);
    }

    pub(crate) fn handle_monitor(&mut self, _msg: &Message) {
        self.numeric(ERR_UNKNOWNCOMMAND, ["MONITOR", "Not implemented yet"]);
    }
}
