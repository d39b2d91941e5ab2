//! No XSS in the web client: an attacker (another browser on the same server, sending raw
//! lines with `/quote`) puts script tags, event handler attributes, `javascript:` links, SVG,
//! bidi overrides, huge strings and formatting codes around them into every field the victim's
//! page shows: messages, actions, notices, private messages, nicks, topics, room names, real
//! names, away messages, part, quit and kick reasons, message tags. The victim's DOM must
//! hold only the client's own elements, without event handler attributes or non-http(s) links,
//! and no dialog may fire. The browser side is `web/tests/xss.mjs`.
//!
//! Needs node, `npm ci` in `web/` and Debian's `chromium`; fails saying what is missing.

mod support;

use support::web::{require_browser_tools, start_server, Script};

#[test]
fn nasty_payloads_in_every_field_never_reach_the_dom_as_markup() {
    require_browser_tools();
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    // The attacker sends a few hundred lines as fast as it can: no command budget here.
    let (server, url) = start_server(&tmp.path().join("data"), "127.0.0.1:0", &["--no-flood-limit"]);
    Script::start("xss.mjs", &url, &[]).run(
        |what| panic!("xss.mjs asks for nothing, but asked for {what}"),
        || format!("===== chinwag output =====\n{}", server.log_tail()),
    );
}
