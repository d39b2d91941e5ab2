//! Makes the screenshots in `docs/web/` (for `docs/web.md`) from the real client against the
//! real server: login, a room in light and dark, the room list, the E2E question, and the
//! phone layout. Ignored by default because it writes into the source tree; regenerate with
//! `cargo test -p chinwag --test web_screenshots -- --ignored` after changing the client's look.
//!
//! Needs node, `npm ci` in `web/` and Debian's `chromium`; fails saying what is missing.

mod support;

use support::web::{require_browser_tools, start_server, web_dir, Script};

#[test]
#[ignore = "writes docs/web/*.png; run it by hand after changing the client's look"]
fn screenshots_of_the_main_screens() {
    require_browser_tools();
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let (server, url) = start_server(&tmp.path().join("data"), "127.0.0.1:0", &["--no-flood-limit"]);
    let out = web_dir().join("../docs/web");
    std::fs::create_dir_all(&out).expect("create docs/web");
    let out = out.canonicalize().expect("docs/web");
    let dir = out.to_string_lossy().into_owned();
    Script::start("screenshots.mjs", &url, &[("SCREENSHOT_DIR", dir.as_str())]).run(
        |what| panic!("screenshots.mjs asks for nothing, but asked for {what}"),
        || format!("===== chinwag output =====\n{}", server.log_tail()),
    );
}
