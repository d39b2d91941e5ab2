//! The account registration settings (`[accounts]`): the shortest password, REGISTER before the
//! connection is complete, a required email, and how draft/account-registration advertises them.

mod support;

use chinwag_core::{AccountSettings, Config, Request};
use support::{expect, Harness};

fn with(accounts: AccountSettings) -> Harness {
    Harness::with_config(Config { accounts, ..Config::default() })
}

fn cap_ls(h: &mut Harness) -> String {
    let c = h.connect();
    h.send(c, "CAP LS 302");
    expect(&h.take(c), "CAP").params.last().cloned().unwrap_or_default()
}

#[test]
fn the_defaults_allow_registration_before_connect_without_email_and_eight_byte_passwords() {
    let mut h = Harness::new();
    assert!(cap_ls(&mut h).split(' ').any(|c| c == "draft/account-registration=before-connect"));
    let c = h.connect();
    h.send(c, "NICK alice");
    h.send(c, "REGISTER * * 1234567");
    assert_eq!(expect(&h.take(c), "FAIL").params[1], "WEAK_PASSWORD");
    h.send(c, "REGISTER * * 12345678");
    let (_, req) = h.next_request();
    assert!(matches!(req, Request::Register { email: None, .. }), "{req:?}");
}

#[test]
fn a_longer_minimum_password_applies_to_registration_and_password_changes() {
    let mut h = with(AccountSettings { min_password_length: 12, ..AccountSettings::default() });
    let c = h.connect();
    h.send(c, "NICK alice");
    h.send(c, "REGISTER * * elevenchars");
    let fail = expect(&h.take(c), "FAIL");
    assert_eq!(fail.params[1], "WEAK_PASSWORD");
    assert!(fail.params[3].contains("12"), "{fail:?}");
    assert!(h.requests.is_empty());
    h.send(c, "REGISTER * * twelve-chars");
    let (id, _) = h.next_request();
    h.respond(id, chinwag_core::Response::Account(Ok("alice".into())));
    h.send(c, "USER alice 0 * :Alice");
    h.take(c);
    h.requests.clear();
    h.send(c, "NS SET PASSWORD elevenchars");
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("12 to"));
    assert!(h.requests.is_empty());
}

#[test]
fn registration_can_require_a_complete_connection_and_an_email() {
    let mut h =
        with(AccountSettings { registration_before_connect: false, email_required: true, ..Default::default() });
    let ls = cap_ls(&mut h);
    assert!(ls.split(' ').any(|c| c == "draft/account-registration=email-required"), "{ls}");
    let c = h.connect();
    h.send(c, "NICK alice");
    h.send(c, "REGISTER * alice@example.net correct-horse");
    assert_eq!(expect(&h.take(c), "FAIL").params[1], "COMPLETE_CONNECTION_REQUIRED");
    h.send(c, "USER alice 0 * :Alice");
    h.take(c);
    h.send(c, "REGISTER * * correct-horse");
    assert_eq!(expect(&h.take(c), "FAIL").params[1], "INVALID_EMAIL");
    h.send(c, "NS REGISTER correct-horse");
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("email address is required"));
    assert!(h.requests.is_empty());
    h.send(c, "REGISTER * alice@example.net correct-horse");
    let (_, req) = h.next_request();
    assert!(matches!(req, Request::Register { email: Some(_), .. }), "{req:?}");

    let mut h = with(AccountSettings { registration_before_connect: false, ..Default::default() });
    let ls = cap_ls(&mut h);
    assert!(ls.split(' ').any(|c| c == "draft/account-registration"), "no flags, no value: {ls}");
}
