//! SASL SCRAM-SHA-256 as the core sees it. The test is both the edge (answering the credential
//! lookup) and a real SCRAM client: it computes the proof itself with RustCrypto's PBKDF2, HMAC
//! and SHA-256, as RFC 5802 says, and checks the server's signature.

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chinwag_core::scram::ScramCredentials;
use chinwag_core::{CertAnswer, CertRequest, ConnId, ConnInfo, Failure, Request, Response, ScramLookup};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use support::{expect, find, parsed, Harness};

const SALT: &[u8] = b"sixteen byte slt";
const CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const SERVER_NONCE: &str = "3rfcNHYJY1ZVvWVs7j";

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A SCRAM-SHA-256 client, as RFC 5802 §3 computes it.
struct Client {
    password: String,
    first_bare: String,
    auth_message: String,
    salted: Vec<u8>,
}

impl Client {
    fn new(user: &str, password: &str) -> Client {
        Client {
            password: password.to_owned(),
            first_bare: format!("n={user},r={CLIENT_NONCE}"),
            auth_message: String::new(),
            salted: Vec::new(),
        }
    }

    fn first(&self) -> String {
        B64.encode(format!("n,,{}", self.first_bare))
    }

    /// The client-final message for the server-first message `b64`.
    fn last(&mut self, server_first_b64: &str) -> String {
        let server_first = String::from_utf8(B64.decode(server_first_b64).expect("base64")).expect("utf-8");
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v.to_owned()),
                Some(("s", v)) => salt = Some(B64.decode(v).expect("salt")),
                Some(("i", v)) => iterations = Some(v.parse::<u32>().expect("iterations")),
                _ => panic!("unexpected attribute in {server_first}"),
            }
        }
        let nonce = nonce.expect("r=");
        assert!(nonce.starts_with(CLIENT_NONCE), "the server's nonce extends ours");
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            self.password.as_bytes(),
            &salt.expect("s="),
            iterations.expect("i="),
            &mut salted,
        );
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let signature = hmac(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        self.salted = salted.to_vec();
        B64.encode(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Whether the server-final message proves the server holds our ServerKey.
    fn server_is_genuine(&self, server_final_b64: &str) -> bool {
        let server_key = hmac(&self.salted, b"Server Key");
        let expected = format!("v={}", B64.encode(hmac(&server_key, self.auth_message.as_bytes())));
        B64.decode(server_final_b64).ok() == Some(expected.into_bytes())
    }
}

fn lookup(account: &str, password: Option<&str>) -> Response {
    Response::Scram(Ok(ScramLookup {
        account: account.to_owned(),
        credentials: password.map(|p| ScramCredentials::derive(p, SALT, 4096)),
        server_nonce: SERVER_NONCE.to_owned(),
    }))
}

/// The last `AUTHENTICATE` payload sent to `conn`.
fn challenge(h: &mut Harness, conn: ConnId) -> String {
    let lines = h.take(conn);
    let msg = parsed(&lines).into_iter().rfind(|m| m.command == "AUTHENTICATE");
    msg.unwrap_or_else(|| panic!("no AUTHENTICATE in {lines:#?}")).params[0].clone()
}

/// Runs a SCRAM exchange up to the client's proof; returns what the server answered to it.
fn prove(h: &mut Harness, c: ConnId, client: &mut Client, stored_password: &str) -> Vec<String> {
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    assert_eq!(challenge(h, c), "+");
    h.send(c, &format!("AUTHENTICATE {}", client.first()));
    let (id, req) = h.next_request();
    assert_eq!(req, Request::ScramCredentials { account: "alice".into() });
    h.respond(id, lookup("Alice", Some(stored_password)));
    let server_first = challenge(h, c);
    h.send(c, &format!("AUTHENTICATE {}", client.last(&server_first)));
    h.take(c)
}

#[test]
fn scram_logs_in_without_the_password_reaching_the_server() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "CAP LS 302");
    let ls = expect(&h.take(c), "CAP");
    assert!(ls.params.last().is_some_and(|l| l.contains("sasl=PLAIN,SCRAM-SHA-256")), "{ls:?}");
    h.send(c, "CAP REQ :sasl");
    h.send(c, "NICK alice");
    h.send(c, "USER alice 0 * :Alice");
    h.take(c);
    let mut client = Client::new("alice", "correct horse");
    let lines = prove(&mut h, c, &mut client, "correct horse");
    let server_final = parsed(&lines).into_iter().rfind(|m| m.command == "AUTHENTICATE").expect("server-final");
    assert!(client.server_is_genuine(&server_final.params[0]), "{lines:#?}");
    assert!(find(&lines, "900").is_none(), "logged in only once the client accepted the server's proof");
    h.send(c, "AUTHENTICATE +");
    let lines = h.take(c);
    assert_eq!(expect(&lines, "900").params[2], "Alice", "the account's canonical name");
    expect(&lines, "903");
    assert!(h.requests.is_empty(), "no password check: the password never reached the server");
    h.send(c, "CAP END");
    expect(&h.take(c), "001");
}

#[test]
fn a_wrong_scram_proof_fails_and_counts_in_the_throttle() {
    let free = chinwag_core::Limits::default().login_free_failures as usize;
    let mut h = Harness::new();
    let c = h.register("mallory");
    for _ in 0..free {
        let mut client = Client::new("alice", "a guess");
        let lines = prove(&mut h, c, &mut client, "correct horse");
        let fail = expect(&lines, "904");
        assert!(fail.params[1].contains("Invalid account name or password"), "{fail:?}");
        assert!(find(&lines, "900").is_none());
    }
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    h.take(c);
    h.send(c, &format!("AUTHENTICATE {}", Client::new("alice", "x").first()));
    let fail = expect(&h.take(c), "904");
    assert!(fail.params[1].contains("try again"), "{fail:?}");
    assert!(h.requests.is_empty(), "a throttled attempt asks for nothing");
    // PLAIN shares the same records: it is refused too.
    h.send(c, "AUTHENTICATE PLAIN");
    h.send(c, &format!("AUTHENTICATE {}", B64.encode("\0alice\0correct horse")));
    assert!(expect(&h.take(c), "904").params[1].contains("try again"));
    assert!(h.requests.is_empty());
}

#[test]
fn scram_attempts_in_flight_count_before_their_proof() {
    let free = chinwag_core::Limits::default().login_free_failures as usize;
    let mut h = Harness::new();
    let conns: Vec<ConnId> = (0..free + 2).map(|i| h.register(&format!("guesser{i}"))).collect();
    for &c in &conns {
        h.send(c, "AUTHENTICATE SCRAM-SHA-256");
        h.send(c, &format!("AUTHENTICATE {}", Client::new("alice", "x").first()));
    }
    let asked = h.requests.iter().filter(|(_, r)| matches!(r, Request::ScramCredentials { .. })).count();
    assert_eq!(asked, free, "only the free attempts go ahead while the others are in flight");
    // Hanging up before the proof releases the reservation: no guess was made.
    for &c in &conns {
        h.disconnect(c, "gone");
    }
    while !h.requests.is_empty() {
        let (id, _) = h.next_request();
        h.respond(id, lookup("Alice", Some("correct horse")));
    }
    let owner = h.register("alice");
    let mut client = Client::new("alice", "correct horse");
    let lines = prove(&mut h, owner, &mut client, "correct horse");
    assert!(find(&lines, "904").is_none(), "{lines:#?}");
}

#[test]
fn an_account_without_scram_credentials_fails_cleanly_and_plain_still_works() {
    let mut h = Harness::new();
    let c = h.register("alice");
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    h.send(c, &format!("AUTHENTICATE {}", Client::new("alice", "correct horse").first()));
    let (id, _) = h.next_request();
    h.respond(id, lookup("Alice", None));
    let fail = expect(&h.take(c), "904");
    assert!(fail.params[1].contains("PLAIN"), "the client is told to fall back: {fail:?}");
    h.send(c, "AUTHENTICATE PLAIN");
    h.send(c, &format!("AUTHENTICATE {}", B64.encode("\0alice\0correct horse")));
    let (id, req) = h.next_request();
    assert!(matches!(req, Request::CheckPassword { .. }), "{req:?}");
    h.respond(id, Response::Account(Ok("Alice".into())));
    expect(&h.take(c), "903");
}

#[test]
fn unknown_accounts_and_malformed_or_foreign_messages_fail() {
    let mut h = Harness::new();
    let c = h.register("mallory");
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    h.send(c, &format!("AUTHENTICATE {}", Client::new("nobody", "x").first()));
    let (id, _) = h.next_request();
    h.respond(id, Response::Scram(Err(Failure::NoSuchAccount)));
    assert!(expect(&h.take(c), "904").params[1].contains("Invalid account name or password"));

    for (first, why) in [
        ("p=tls-unique,,n=alice,r=abc", "channel binding"),
        ("n,a=bob,n=alice,r=abc", "yourself"),
        ("n,,n=alice", "malformed"),
        ("garbage", "malformed"),
    ] {
        h.send(c, "AUTHENTICATE SCRAM-SHA-256");
        h.send(c, &format!("AUTHENTICATE {}", B64.encode(first)));
        let fail = expect(&h.take(c), "904");
        assert!(fail.params[1].contains(why), "{first}: {fail:?}");
        assert!(h.requests.is_empty(), "{first} asked for credentials");
    }

    // A final message that changes the nonce is not this exchange's. (A new client: the
    // attempts above spent this one's flood budget.)
    let c = h.register("trudy");
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    h.send(c, &format!("AUTHENTICATE {}", Client::new("alice", "correct horse").first()));
    let (id, _) = h.next_request();
    h.respond(id, lookup("Alice", Some("correct horse")));
    h.take(c);
    h.send(c, &format!("AUTHENTICATE {}", B64.encode(format!("c=biws,r={CLIENT_NONCE}other,p=AAAA"))));
    assert!(expect(&h.take(c), "904").params[1].contains("malformed"));
    // And an abort in the middle of an exchange ends it.
    let c = h.register("oscar");
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    h.send(c, &format!("AUTHENTICATE {}", Client::new("alice", "correct horse").first()));
    let (id, _) = h.next_request();
    h.respond(id, lookup("Alice", Some("correct horse")));
    h.send(c, "AUTHENTICATE *");
    expect(&h.take(c), "906");
}

#[test]
fn scram_is_refused_in_clear_from_the_network() {
    let mut h = Harness::new();
    let c = h.connect_from("192.0.2.7".parse().expect("address"), false);
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    assert!(expect(&h.take(c), "904").params[1].contains("TLS"));
}

const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn with_cert(h: &mut Harness, certfp: Option<&str>) -> ConnId {
    let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));
    let certfp = certfp.map(|hex| {
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        Box::new(digest)
    });
    h.connect_info(ConnInfo { ip, host: ip.to_string(), tls: true, quic: false, certfp })
}

#[test]
fn sasl_external_logs_in_the_account_that_registered_the_certificate() {
    let mut h = Harness::new();
    let c = with_cert(&mut h, Some(FP));
    h.send(c, "CAP LS 302");
    let ls = expect(&h.take(c), "CAP");
    assert!(ls.params.last().is_some_and(|l| l.contains("sasl=PLAIN,SCRAM-SHA-256,EXTERNAL")), "{ls:?}");
    h.send(c, "NICK alice");
    h.send(c, "USER alice 0 * :Alice");
    h.send(c, "AUTHENTICATE EXTERNAL");
    assert_eq!(challenge(&mut h, c), "+");
    h.send(c, "AUTHENTICATE +");
    let (id, req) = h.next_request();
    assert_eq!(req, Request::CertOwner { fingerprint: FP.into() });
    h.respond(id, Response::Account(Ok("Alice".into())));
    let lines = h.take(c);
    assert_eq!(expect(&lines, "900").params[2], "Alice");
    expect(&lines, "903");

    // An authorization identity must be the certificate's account.
    let d = with_cert(&mut h, Some(FP));
    h.send(d, "AUTHENTICATE EXTERNAL");
    h.send(d, &format!("AUTHENTICATE {}", B64.encode("bob")));
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("Alice".into())));
    assert!(expect(&h.take(d), "904").params[1].contains("another account"));
    // An unregistered certificate logs in nobody.
    h.send(d, "AUTHENTICATE EXTERNAL");
    h.send(d, "AUTHENTICATE +");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Err(Failure::NoSuchAccount)));
    assert!(expect(&h.take(d), "904").params[1].contains("CERT ADD"));
}

#[test]
fn sasl_external_needs_a_certificate_and_tls() {
    let mut h = Harness::new();
    let c = with_cert(&mut h, None);
    h.send(c, "AUTHENTICATE EXTERNAL");
    assert!(expect(&h.take(c), "904").params[1].contains("no client certificate"));
    let p = h.connect();
    h.send(p, "CAP LS 302");
    let ls = expect(&h.take(p), "CAP");
    assert!(!ls.params.last().is_some_and(|l| l.contains("EXTERNAL")), "not offered in clear: {ls:?}");
    h.send(p, "AUTHENTICATE EXTERNAL");
    let lines = h.take(p);
    assert_eq!(expect(&lines, "908").params[1], "PLAIN,SCRAM-SHA-256");
    expect(&lines, "904");
    assert!(h.requests.is_empty());
}

#[test]
fn nickserv_cert_registers_the_connections_certificate_to_the_account() {
    let mut h = Harness::new();
    let c = with_cert(&mut h, Some(FP));
    h.send(c, "NICK alice");
    h.send(c, "USER alice 0 * :Alice");
    h.take(c);
    h.send(c, "NS CERT ADD");
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("Log in first"));
    assert!(h.requests.is_empty());
    h.send(c, "NS IDENTIFY correct-horse");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("alice".into())));
    h.take(c);
    let (_, offline) = h.next_request();
    assert!(matches!(offline, Request::Offline { .. }), "{offline:?}");

    h.send(c, "NS CERT ADD");
    let (id, req) = h.next_request();
    let add = CertRequest::Add { account: "alice".into(), fingerprint: FP.into(), max: 16 };
    assert_eq!(req, Request::Certs(add));
    h.respond(id, Response::Certs(Ok(CertAnswer::Added)));
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("Certificate added"));
    // Another fingerprint, as users copy it: upper case with colons.
    let other = "AB:".repeat(31) + "AB";
    h.send(c, &format!("NS CERT DEL {other}"));
    let (id, req) = h.next_request();
    assert_eq!(req, Request::Certs(CertRequest::Remove { account: "alice".into(), fingerprint: "ab".repeat(32) }));
    h.respond(id, Response::Certs(Ok(CertAnswer::Removed(false))));
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("not on your account"));
    // Someone else's fingerprint cannot be registered (it would log its holder in here).
    h.send(c, &format!("NS CERT ADD {other}"));
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("only the certificate you are connected with"));
    assert!(h.requests.is_empty(), "nothing stored");
    h.send(c, &format!("NS CERT ADD {}", FP.to_ascii_uppercase()));
    let (id, req) = h.next_request();
    assert_eq!(req, Request::Certs(CertRequest::Add { account: "alice".into(), fingerprint: FP.into(), max: 16 }));
    h.respond(id, Response::Certs(Ok(CertAnswer::AlreadyThere)));
    h.take(c);
    h.send(c, "NS CERT ADD not-a-fingerprint");
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("not a SHA-256 fingerprint"));
    h.send(c, "NS CERT LIST");
    let (id, _) = h.next_request();
    h.respond(id, Response::Certs(Ok(CertAnswer::List(vec![FP.into()]))));
    assert!(expect(&h.take(c), "NOTICE").params[1].contains(FP));
}

#[test]
fn whois_shows_a_certificate_fingerprint_to_its_holder_and_operators_only() {
    let mut h = Harness::new();
    let c = with_cert(&mut h, Some(FP));
    h.send(c, "NICK alice");
    h.send(c, "USER alice 0 * :Alice");
    h.take(c);
    let bob = h.register("bob");
    h.send(c, "WHOIS alice");
    let lines = h.take(c);
    assert!(expect(&lines, "276").params[2].contains(FP), "{lines:#?}");
    h.send(bob, "WHOIS alice");
    assert!(find(&h.take(bob), "276").is_none(), "another user does not see it");
}

#[test]
fn over_long_sasl_chunks_and_endless_payloads_are_refused() {
    let mut h = Harness::new();
    let c = h.register("alice");
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    h.take(c);
    h.send(c, &format!("AUTHENTICATE {}", "A".repeat(401)));
    expect(&h.take(c), "905");
    h.send(c, "AUTHENTICATE SCRAM-SHA-256");
    h.take(c);
    for _ in 0..5 {
        h.send(c, &format!("AUTHENTICATE {}", "A".repeat(400)));
    }
    assert!(expect(&h.take(c), "904").params[1].contains("too long"));
    assert!(h.requests.is_empty());
    // The exchange is over: a new one starts cleanly.
    h.send(c, "AUTHENTICATE PLAIN");
    assert_eq!(challenge(&mut h, c), "+");
}
