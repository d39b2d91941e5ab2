//! Reload over a real server: a renewed TLS certificate is served to new connections without a
//! restart (open ones keep going), the MOTD file, limits and operators are re-read, and a reload
//! that does not validate changes nothing.

mod support;

use std::path::Path;

use chinwag_server::ConfigSource;
use support::{tls_connect, Client};

/// Writes a fresh self-signed certificate and key to `dir/cert.pem` and `dir/key.pem`; returns
/// its fingerprint.
fn write_cert(dir: &Path) -> String {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("generate");
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).expect("write key");
    chinwag_server::fingerprint(certified.cert.der())
}

#[tokio::test]
async fn reload_applies_certificate_motd_limits_and_operators_and_refuses_a_bad_configuration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = write_cert(dir.path());
    let motd = dir.path().join("motd.txt");
    std::fs::write(&motd, "before the reload\n").expect("motd");
    let config = dir.path().join("chinwag.toml");
    let text = format!(
        "data_dir = {data:?}\n[server]\nmotd_file = {motd:?}\n[listen]\nplaintext = [\"127.0.0.1:0\"]\ntls = [\"127.0.0.1:0\"]\n\
         [tls]\ncert = {cert:?}\nkey = {key:?}\n[web]\nlisten = [\"127.0.0.1:0\"]\n",
        data = dir.path().join("data").display().to_string(),
        motd = motd.display().to_string(),
        cert = dir.path().join("cert.pem").display().to_string(),
        key = dir.path().join("key.pem").display().to_string(),
    );
    std::fs::write(&config, &text).expect("config");
    let source = ConfigSource { file: Some(config.clone()), ..ConfigSource::default() };
    let running = chinwag_server::start(source.load().expect("valid config")).await.expect("starts");
    assert_eq!(running.fingerprint, first);
    let addr = running.tls[0];
    let mut early = Client::tls(addr, &first, "early").await;
    early.register("early").await;

    let second = write_cert(dir.path());
    std::fs::write(&motd, "after the reload\n").expect("motd");
    // Before the reload: no operators, four targets per message.
    early.send("OPER admin operator-password").await;
    early.expect_command("464").await;
    early.send("PRIVMSG early,ghost :two targets").await;
    early.expect_command("401").await;
    let hash = chinwag_server::hash_password("operator-password").expect("hash");
    let with_more =
        format!("{text}[limits]\nmax_targets = 1\n[[oper]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n");
    std::fs::write(&config, &with_more).expect("config");
    let summary = running.control().reload("test").await.expect("reload works");
    assert!(summary.contains(&second), "{summary}");
    early.send("PRIVMSG early,ghost :two targets").await;
    early.expect_command("407").await;
    early.send("OPER admin operator-password").await;
    early.expect_command("381").await;
    let mut late = Client::tls(addr, &second, "late").await;
    late.send("NICK late").await;
    late.send("USER late 0 * :late").await;
    late.expect("the new MOTD", |m| m.command == "372" && m.params[1].contains("after the reload")).await;
    assert!(tls_connect(addr, &first, None).await.is_err(), "the old certificate is no longer served");
    // HTTPS (the web listener) serves the new certificate too.
    assert!(tls_connect(running.web[0], &second, None).await.is_ok(), "HTTPS has the new certificate");
    assert!(tls_connect(running.web[0], &first, None).await.is_err(), "and no longer the old one");
    early.send("PING still-here").await;
    early.expect_command("PONG").await;

    // A key that does not fit the certificate: refused, and the running one stays.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("generate");
    std::fs::write(dir.path().join("key.pem"), other.key_pair.serialize_pem()).expect("write key");
    let error = running.control().reload("test").await.expect_err("a mismatched key is refused");
    assert!(format!("{error:#}").contains("does not fit"), "{error:#}");
    // A configuration with a mistake: refused as a whole.
    std::fs::write(&config, with_more.replace("motd_file", "motd_flie")).expect("config");
    let error = running.control().reload("test").await.expect_err("an unknown key is refused");
    assert!(format!("{error:#}").contains("motd_flie"), "{error:#}");
    let mut last = Client::tls(addr, &second, "last").await;
    last.register("last").await;
    assert!(running.shutdown().await.clean);
}
