//! End-to-end test with real third-party IRC clients: irssi and WeeChat connect to a real
//! `chinwag serve` over TLS, join `#general`, and talk to each other in the channel and in
//! private. Each client runs in its own session of a private tmux server, and the test reads
//! their screens as a user would.
//!
//! What it is not: a protocol test. Lines in and lines out are checked by the server's own
//! tests; this one answers "do the clients people actually use work against us?".
//!
//! Needs `tmux`, `irssi` and `weechat` on the PATH (the Debian packages are listed in
//! `.ci/apt-packages.txt`). If one is missing the test fails and says what to install: CI
//! installs them, so a skip would only hide a broken CI image.
//!
//! # How the clients are driven
//!
//! Worked out with irssi 1.4.3, WeeChat 3.8 and tmux 3.3a (Debian 12) against ngircd behind
//! TLS, then run against chinwag. How tmux and WeeChat are run is in `support::tmux` and
//! `support::weechat`; WeeChat gets `autojoin #general` on top of the common settings.
//! Autojoin happens after the welcome and switches to the channel buffer.
//!
//! **irssi.** `irssi --home=<tmp>/irssi -!` (`-!`: autoconnect nothing). Two files are written
//! into the home first:
//! - `config` with a few settings only (nick, user and real name, `settings_autosave = "no"`).
//!   Without it irssi starts from `/etc/irssi.conf`, which lists real networks (none set to
//!   autoconnect, but we want none at all), and takes names from the account running the test.
//! - `startup`, commands irssi runs at start as if typed:
//!   ```text
//!   /network add -nick irssiuser -user irssiuser -realname … -autosendcmd "/join #general" chinwag
//!   /connect -tls -tls_pinned_cert <AB:CD:…> -rawlog <tmp>/irssi-raw.log -network chinwag 127.0.0.1 <tls port>
//!   ```
//!
//! `-tls_pinned_cert` takes the SHA-256 of the certificate in exactly the form irssi prints it
//! and chinwag's banner shows it: 32 uppercase hex pairs joined by ':'. Without `-tls_verify`
//! irssi checks no CA chain and no host name, so the pin is the whole verification, and a real
//! one: a wrong pin ends the connection with "Pinned certificate mismatch". irssi 1.4's
//! `/server add` has no pin option, hence the address on `/connect`. The channel is joined by
//! `-autosendcmd`, which runs once the server has welcomed us, rather than by
//! `/channel add -auto`: autojoined channels open in a background window, while a `/join`
//! focuses its window. irssi throttles what it sends (five commands at once, then one every
//! 2.2 s), so a typed line can take seconds to leave; the deadline allows for it.
//!
//! **Private messages.** Both clients open a query for an incoming private message in the
//! background, so the receiver opens the query (`/query <sender>`) before the sender types
//! `/msg`. Whichever comes first, the query ends up in front.
//!
//! # What the server must do for these clients
//!
//! - Answer `CAP LS 302`. irssi sends `CAP LS 302` and then `JOIN :` before registering: a
//!   server that ignores CAP answers the JOIN with 451, which tells irssi to stop waiting for
//!   CAP. So `JOIN :` before registration must get a 451 (or be ignored), never a disconnect.
//! - Replay a room's latest lines on JOIN to a client without draft/chathistory (irssi): a line
//!   said before irssi came shows on its screen.
//! - Echo the client's own JOIN with its full prefix: both clients show "<nick> … has joined
//!   #general" only from that echo.

mod support;

use std::time::Instant;

use support::client::PlainClient;
use support::pair::{Pair, CHANNEL, IRSSI, WEECHAT, WEECHAT_NICK};
use support::process::ServerProcess;

#[test]
fn irssi_and_weechat_talk_over_tls() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let root = tmp.path();

    let server = ServerProcess::start(&root.join("data"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    // A line said before either client comes: irssi does not ask for history (no
    // draft/chathistory), so the server replays it when irssi joins (history.autoreplay_lines).
    let earlier = format!("said before irssi came {}", std::process::id());
    let mut early = PlainClient::plain(server.plaintext[0], "early");
    early.register("earlybird");
    early.join(CHANNEL);
    early.send(&format!("PRIVMSG {CHANNEL} :{earlier}"));
    let pair = Pair::start(root, vec![("chinwag", &server)]);

    // Both clients register and join; each then sees the other in the channel, through the
    // other's JOIN or through the NAMES reply to its own.
    pair.wait_until_both_joined();
    pair.wait_for_line(IRSSI, "the earlier line, replayed on join", &["earlybird", &earlier]);

    let nonce = support::nonce();
    pair.talk(&nonce);

    // irssi shows a quit in the open query with the leaving nick, so this checks that QUIT
    // reaches those who share a channel, reason included.
    let goodbye = format!("goodbye-from-weechat-{nonce}");
    pair.type_line(WEECHAT, &format!("/quit {goodbye}"));
    pair.wait_for_line(IRSSI, "WeeChat's quit", &[WEECHAT_NICK, "has quit", &goodbye]);

    eprintln!("third-party client test passed in {:.1?}", started.elapsed());
}
