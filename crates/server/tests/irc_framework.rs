//! A third-party WebSocket IRC client against `/ws`: irc-framework, the library Kiwi IRC is
//! built on, with its WebSocket transport (on the `ws` package, which negotiates
//! permessage-deflate as browsers do), run by Node.js from `tests/js` (`npm ci` there first;
//! CI does). It registers, joins a room and says something that a TCP client receives, and
//! receives the TCP client's answer, from a page origin the operator listed in `web.origins`.

mod support;

use std::path::Path;
use std::process::Stdio;

use support::{start_server, Client, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};

const ORIGIN: &str = "https://kiwi.example.org";

#[tokio::test]
async fn irc_framework_over_the_websocket_talks_with_a_tcp_client() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/irc-framework").is_dir() && js.join("node_modules/ws").is_dir(),
        "irc-framework is not installed: run `npm ci` in {} (CI does, in .ci/run)",
        js.display()
    );
    let (running, dir) = start_server(|cfg| {
        cfg.web.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        cfg.web.origins = vec![ORIGIN.into()];
    })
    .await;
    let mut alice = Client::plain(running.plaintext[0], "alice").await;
    alice.register("alice").await;
    alice.join("#general").await;

    let mut node = tokio::process::Command::new("node")
        .current_dir(&js)
        .arg("irc_framework_ws.js")
        .arg(running.web[0].port().to_string())
        .arg(dir.path().join("tls/cert.pem"))
        .args([ORIGIN, "kiwi", "#general", "hello from irc-framework"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (is Node.js installed?)");
    let mut out = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let mut next = async || {
        let line = tokio::time::timeout(WAIT, out.next_line()).await.expect("node said something in time");
        let line = line.expect("read node's output").unwrap_or_else(|| "(node exited)".into());
        seen.push(line.clone());
        line
    };
    let registered = next().await;
    assert!(registered.starts_with("registered protocol=text.ircv3.net"), "{registered}");
    assert!(registered.contains("permessage-deflate"), "ws negotiates compression: {registered}");
    assert_eq!(next().await, "joined #general");

    let heard = alice.expect("kiwi's message", |m| m.command == "PRIVMSG").await;
    assert_eq!(heard.params, ["#general", "hello from irc-framework"]);
    assert!(heard.source.as_deref().is_some_and(|s| s.starts_with("kiwi!")), "{heard:?}");
    alice.send("PRIVMSG #general :héllo kiwi").await;
    assert_eq!(next().await, "message from=alice target=#general text=héllo kiwi");
    alice.send("PRIVMSG #general :bye").await;
    assert_eq!(next().await, "message from=alice target=#general text=bye");
    let quit = alice.expect("kiwi's QUIT", |m| m.command == "QUIT").await;
    assert!(quit.params.iter().any(|p| p.contains("done")), "{quit:?}");
    assert_eq!(next().await, "closed");
    let status = tokio::time::timeout(WAIT, node.wait()).await.expect("node exits").expect("status");
    assert!(status.success(), "node: {status}; said {seen:#?}");
    running.shutdown().await;
}
