//! SASL mechanisms over real sockets and a real SQLite file: SCRAM-SHA-256 with credentials
//! stored at registration, derived at the first password login of an account that had none, and
//! replaced with the password; EXTERNAL with a self-signed client certificate registered by
//! NickServ CERT, presented over TLS or over QUIC.

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use support::{start_server, Client};

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Registers `nick` over TLS with REGISTER, then disconnects.
async fn register(addr: std::net::SocketAddr, fp: &str, nick: &str, password: &str) {
    let mut c = Client::tls(addr, fp, nick).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("REGISTER * * {password}")).await;
    let ok = c.expect("REGISTER or FAIL", |m| m.command == "REGISTER" || m.command == "FAIL").await;
    assert_eq!(ok.params[0], "SUCCESS", "{ok:?}");
    c.send("QUIT").await;
    c.expect_closed().await;
}

/// A whole SCRAM-SHA-256 exchange (RFC 5802) on a new TLS connection, before registration.
/// `Ok(client)` once logged in (903), `Err(the 904 text)` otherwise.
async fn scram_login(addr: std::net::SocketAddr, fp: &str, nick: &str, password: &str) -> Result<Client, String> {
    // A nick of its own: earlier sessions of the account may still hold the account's.
    static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let session = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut c = Client::tls(addr, fp, nick).await;
    c.send("CAP LS 302").await;
    let ls = c.expect_command("CAP").await;
    assert!(ls.params.last().is_some_and(|l| l.contains("SCRAM-SHA-256")), "{ls:?}");
    c.send("CAP REQ :sasl").await;
    c.send(&format!("NICK {nick}{session}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    c.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    let first_bare = format!("n={nick},r=rOprNGfwEbeRWgbNEkqO");
    c.send(&format!("AUTHENTICATE {}", B64.encode(format!("n,,{first_bare}")))).await;
    let reply = c.expect("a challenge or 904", |m| m.command == "AUTHENTICATE" || m.command == "904").await;
    if reply.command == "904" {
        return Err(reply.params[1].clone());
    }
    let server_first = String::from_utf8(B64.decode(&reply.params[0]).expect("base64")).expect("utf-8");
    let attrs: Vec<(&str, &str)> = server_first.split(',').filter_map(|a| a.split_once('=')).collect();
    let get = |k: &str| attrs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v).expect("attribute");
    let (nonce, salt, iterations) = (get("r"), B64.decode(get("s")).expect("salt"), get("i"));
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations.parse().expect("count"), &mut salted);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{first_bare},{server_first},{without_proof}");
    let client_key = hmac(&salted, b"Client Key");
    let signature = hmac(&Sha256::digest(&client_key), auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
    c.send(&format!("AUTHENTICATE {}", B64.encode(format!("{without_proof},p={}", B64.encode(proof))))).await;
    let reply = c.expect("server-final or 904", |m| m.command == "AUTHENTICATE" || m.command == "904").await;
    if reply.command == "904" {
        return Err(reply.params[1].clone());
    }
    let expected = format!("v={}", B64.encode(hmac(&hmac(&salted, b"Server Key"), auth.as_bytes())));
    assert_eq!(B64.decode(&reply.params[0]).expect("base64"), expected.into_bytes(), "the server proves itself");
    c.send("AUTHENTICATE +").await;
    c.expect_command("903").await;
    c.send("CAP END").await;
    c.expect_command("376").await;
    Ok(c)
}

#[tokio::test]
async fn scram_logs_in_with_credentials_stored_at_registration_and_replaced_with_the_password() {
    let (server, _dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    register(addr, &fp, "alice", "correct-horse").await;
    assert!(scram_login(addr, &fp, "alice", "wrong-horse").await.is_err());
    let mut alice = scram_login(addr, &fp, "alice", "correct-horse").await.expect("SCRAM login");
    alice.send("PRIVMSG NickServ :SET PASSWORD battery-staple").await;
    alice.expect("changed", |m| m.command == "NOTICE" && m.params[1].contains("changed")).await;
    let old = scram_login(addr, &fp, "alice", "correct-horse").await.err().expect("the old password is gone");
    assert!(old.contains("Invalid account name or password"), "{old}");
    scram_login(addr, &fp, "alice", "battery-staple").await.expect("the new password works");
    server.shutdown().await;
}

#[tokio::test]
async fn an_account_from_before_scram_gets_credentials_at_its_next_password_login() {
    let (server, dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    register(addr, &fp, "bob", "bob-password").await;
    // As an account registered by an older version would be: no SCRAM credentials.
    let db = rusqlite::Connection::open(dir.path().join(chinwag_server::DATABASE_FILE)).expect("open the database");
    db.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
    assert_eq!(db.execute("UPDATE accounts SET scram = NULL", []).expect("forget"), 1);
    let why = scram_login(addr, &fp, "bob", "bob-password").await.err().expect("no credentials yet");
    assert!(why.contains("PLAIN"), "the client is told to fall back: {why}");

    let mut c = Client::tls(addr, &fp, "bob").await;
    c.send("NICK bob").await;
    c.send("USER bob 0 * :bob").await;
    c.expect_command("376").await;
    c.send("PRIVMSG NickServ :IDENTIFY bob-password").await;
    c.expect_command("900").await;
    // The credentials are stored before the login is answered.
    let stored: Option<String> =
        db.query_row("SELECT scram FROM accounts WHERE folded = 'bob'", [], |r| r.get(0)).expect("read");
    assert!(stored.is_some_and(|s| s.starts_with("SCRAM-SHA-256$4096:")), "derived at the password login");
    scram_login(addr, &fp, "bob", "bob-password").await.expect("SCRAM works from now on");
    server.shutdown().await;
}

#[tokio::test]
async fn sasl_external_logs_in_with_a_registered_self_signed_client_certificate() {
    let (server, _dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    register(addr, &fp, "carol", "carol-password").await;
    let made = rcgen::generate_simple_self_signed(vec!["carol".to_owned()]).expect("client certificate");
    let cert = made.cert.der().clone();
    let key = || rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    let certfp: String = Sha256::digest(cert.as_ref()).iter().map(|b| format!("{b:02x}")).collect();

    // Before the certificate is registered, EXTERNAL logs in nobody.
    let mut c = support::tls_with_client_cert(addr, &fp, cert.clone(), key(), "carol").await;
    c.send("CAP LS 302").await;
    let ls = c.expect_command("CAP").await;
    assert!(ls.params.last().is_some_and(|l| l.contains("sasl=PLAIN,SCRAM-SHA-256,EXTERNAL")), "{ls:?}");
    c.send("NICK carol").await;
    c.send("USER carol 0 * :carol").await;
    c.send("AUTHENTICATE EXTERNAL").await;
    c.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    c.send("AUTHENTICATE +").await;
    let fail = c.expect_command("904").await;
    assert!(fail.params[1].contains("not registered"), "{fail:?}");
    c.send("CAP END").await;
    c.expect_command("376").await;
    c.send("WHOIS carol").await;
    let whois = c.expect_command("276").await;
    assert!(whois.params[2].contains(&certfp), "the edge computed the fingerprint: {whois:?}");
    // Logged in with the password, the connection registers its own certificate.
    c.send("PRIVMSG NickServ :IDENTIFY carol-password").await;
    c.expect_command("900").await;
    c.send("PRIVMSG NickServ :CERT ADD").await;
    c.expect("added", |m| m.command == "NOTICE" && m.params[1].contains("Certificate added")).await;
    c.send("QUIT").await;
    c.expect_closed().await;

    let mut c = support::tls_with_client_cert(addr, &fp, cert.clone(), key(), "carol").await;
    c.send("CAP REQ :sasl").await;
    c.send("NICK carol").await;
    c.send("USER carol 0 * :carol").await;
    c.send("AUTHENTICATE EXTERNAL").await;
    c.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    c.send("AUTHENTICATE +").await;
    let logged_in = c.expect_command("900").await;
    assert_eq!(logged_in.params[2], "carol");
    c.expect_command("903").await;
    c.send("CAP END").await;
    c.expect_command("376").await;

    // Another certificate, the same name: nobody.
    let other = rcgen::generate_simple_self_signed(vec!["carol".to_owned()]).expect("client certificate");
    let other_key = rustls::pki_types::PrivateKeyDer::Pkcs8(other.key_pair.serialize_der().into());
    let mut m = support::tls_with_client_cert(addr, &fp, other.cert.der().clone(), other_key, "mallory").await;
    m.send("AUTHENTICATE EXTERNAL").await;
    m.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    m.send("AUTHENTICATE +").await;
    m.expect_command("904").await;
    // And a TLS client without a certificate still connects.
    let mut plain = Client::tls(addr, &fp, "dave").await;
    plain.register("dave").await;
    server.shutdown().await;
}

#[tokio::test]
async fn sasl_external_over_quic_takes_the_client_certificate_of_the_quic_handshake() {
    let (server, _dir) = start_server(|_| {}).await;
    let (quic, fp) = (server.quic[0], server.fingerprint.clone());
    register(server.tls[0], &fp, "erin", "erin-password").await;
    let made = rcgen::generate_simple_self_signed(vec!["erin".to_owned()]).expect("client certificate");
    let cert = made.cert.der().clone();
    let key = || rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    let certfp: String = Sha256::digest(cert.as_ref()).iter().map(|b| format!("{b:02x}")).collect();
    let with_cert = || support::quic_config(&fp, Some((cert.clone(), key())));

    // Registered over QUIC: the certificate of the QUIC handshake is the connection's.
    let (mut c, _conn, _endpoint) = Client::quic_with(quic, with_cert(), "erin").await;
    c.register("erin").await;
    c.send("WHOIS erin").await;
    let whois = c.expect_command("276").await;
    assert!(whois.params[2].contains(&certfp), "the QUIC edge computed the fingerprint: {whois:?}");
    c.send("PRIVMSG NickServ :IDENTIFY erin-password").await;
    c.expect_command("900").await;
    c.send("PRIVMSG NickServ :CERT ADD").await;
    c.expect("added", |m| m.command == "NOTICE" && m.params[1].contains("Certificate added")).await;
    c.send("QUIT").await;
    c.expect_closed().await;

    // A new QUIC connection with it logs in with EXTERNAL, before registration.
    let (mut c, _conn, _endpoint) = Client::quic_with(quic, with_cert(), "erin").await;
    c.send("CAP REQ :sasl").await;
    c.send("NICK erin").await;
    c.send("USER erin 0 * :erin").await;
    c.send("AUTHENTICATE EXTERNAL").await;
    c.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    c.send("AUTHENTICATE +").await;
    let logged_in = c.expect_command("900").await;
    assert_eq!(logged_in.params[2], "erin");
    c.expect_command("903").await;
    c.send("CAP END").await;
    c.expect_command("376").await;

    // Over QUIC without a certificate: EXTERNAL logs in nobody, and the connection goes on.
    let (mut d, _conn, _endpoint) = Client::quic(quic, &fp, "dave").await;
    d.send("AUTHENTICATE EXTERNAL").await;
    let fail = d.expect_command("904").await;
    assert!(fail.params[1].contains("no client certificate"), "{fail:?}");
    d.register("dave").await;
    server.shutdown().await;
}
