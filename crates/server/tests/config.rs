//! The configuration: the documented defaults, precedence of flags over the environment over the
//! file, and an error for every kind of mistake that names the key, the value, what would be
//! valid and where it was set.

use std::path::PathBuf;
use std::time::Duration;

use chinwag_server::{ConfigSource, FlagValue, RawConfig, ServerConfig, DEFAULT_CONFIG};

fn source(file: Option<&str>, env: &[(&str, &str)], flags: &[(&str, &str)]) -> (ConfigSource, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = file.map(|text| {
        let path = dir.path().join("chinwag.toml");
        std::fs::write(&path, text).expect("write config");
        path
    });
    let source = ConfigSource {
        file,
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        flags: flags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), FlagValue::Text((*v).to_owned()), format!("flag --set {k}")))
            .collect(),
        default_data_dir: Some(dir.path().join("data")),
    };
    (source, dir)
}

fn load(file: Option<&str>, env: &[(&str, &str)], flags: &[(&str, &str)]) -> anyhow::Result<ServerConfig> {
    let (source, _dir) = source(file, env, flags);
    source.load()
}

fn error(file: Option<&str>, env: &[(&str, &str)], flags: &[(&str, &str)]) -> String {
    match load(file, env, flags) {
        Ok(cfg) => panic!("expected an error, got {cfg:#?}"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "error {text:?} does not mention {part:?}");
    }
}

#[test]
fn the_printed_default_file_parses_back_to_the_defaults() {
    let (with_file, _d1) = source(Some(DEFAULT_CONFIG), &[], &[]);
    let (without, _d2) = source(None, &[], &[]);
    assert_eq!(with_file.raw().expect("default file parses"), RawConfig::default());
    assert_eq!(without.raw().expect("no file"), RawConfig::default());
    let cfg = with_file.load().expect("defaults validate");
    assert_eq!(cfg.core.server_name, "chinwag.local");
    assert_eq!(cfg.listen.len(), 2);
    // The default IPv6 listeners may be missing, and the default web listeners taken.
    assert_eq!(cfg.optional_listen.len(), 4, "{:?}", cfg.optional_listen);
    assert_eq!(cfg.web.listen, ["0.0.0.0:6698".parse().expect("addr"), "[::]:6698".parse().expect("addr")]);
    assert!(cfg.web.listen_plain.is_empty() && cfg.web.compression);
    assert_eq!(cfg.metrics_listen, None);
    assert_eq!(cfg.limits.sendq_lines, chinwag_server::DEFAULT_SENDQ_LINES);
    assert_eq!(cfg.core.default_channels, ["#general", "#tech", "#random"]);
    assert!(cfg.core.opers.is_empty());
    assert_eq!(cfg.history_retention, Some(Duration::from_secs(30 * 24 * 3600)), "history is pruned by default");
    assert_eq!(chinwag_server::DEFAULT_HISTORY_RETENTION_DAYS, 30);
    assert_eq!(ServerConfig::new(PathBuf::from("/x")).history_retention, cfg.history_retention);
}

#[test]
fn every_key_is_documented_in_the_default_file() {
    let value = serde_json::to_value(RawConfig::default()).expect("serializes");
    let mut missing = Vec::new();
    let mut section = String::new();
    let sections: Vec<(String, Vec<String>)> =
        DEFAULT_CONFIG.lines().fold(Vec::new(), |mut acc: Vec<(String, Vec<String>)>, line| {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            } else if let Some((key, _)) = line.split_once(" = ").filter(|_| !line.starts_with('#')) {
                match acc.iter_mut().find(|(s, _)| *s == section) {
                    Some((_, keys)) => keys.push(key.trim().to_owned()),
                    None => acc.push((section.clone(), vec![key.trim().to_owned()])),
                }
            }
            acc
        });
    let documented =
        |section: &str, key: &str| sections.iter().any(|(s, keys)| s == section && keys.iter().any(|k| k == key));
    for (key, v) in value.as_object().expect("a table") {
        match v.as_object() {
            Some(table) => {
                for inner in table.keys() {
                    if !documented(key, inner) {
                        missing.push(format!("{key}.{inner}"));
                    }
                }
            }
            None if key == "oper" => assert!(DEFAULT_CONFIG.contains("# [[oper]]"), "[[oper]] is documented"),
            None => {
                if !documented("", key) {
                    missing.push(key.clone());
                }
            }
        }
    }
    assert!(missing.is_empty(), "keys missing from default.toml: {missing:?}");
    // And every documented key line is preceded by a comment.
    let lines: Vec<&str> = DEFAULT_CONFIG.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" = ") && !line.starts_with('#') && line.split_once(" = ").is_some_and(|(k, _)| k != "key") {
            assert!(lines[i - 1].starts_with('#'), "line {} ({line}) has no comment above it", i + 1);
        }
    }
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let file = "[server]\nname = \"from.file\"\n[limits]\nsendq = 100\n";
    let env = [("CHINWAG_SERVER_NAME", "from.env"), ("CHINWAG_LIMITS_SENDQ", "200")];
    let flags = [("server.name", "from.flag")];
    let cfg = load(Some(file), &env, &flags).expect("valid");
    assert_eq!(cfg.core.server_name, "from.flag");
    assert_eq!(cfg.limits.sendq_lines, 200, "the environment beats the file");
    let cfg = load(Some(file), &[], &[]).expect("valid");
    assert_eq!((cfg.core.server_name.as_str(), cfg.limits.sendq_lines), ("from.file", 100));
    let cfg = load(None, &env, &[]).expect("valid");
    assert_eq!(cfg.core.server_name, "from.env");
}

#[test]
fn every_kind_of_value_can_come_from_the_environment() {
    let env = [
        ("CHINWAG_LISTEN_TLS", "127.0.0.1:7001, [::1]:7002"),
        ("CHINWAG_LISTEN_METRICS", "127.0.0.1:9667"),
        ("CHINWAG_LOG_JSON", "true"),
        ("CHINWAG_STORAGE_HISTORY_RETENTION_DAYS", "45"),
        ("CHINWAG_DATA_DIR", "/srv/chinwag"),
        ("CHINWAG_SERVER_PASSWORD", "letmein"),
        ("CHINWAG_SERVER_MOTD", "[\"Hello, world\", \"Be nice\"]"),
        ("CHINWAG_SERVER_DEFAULT_ROOMS", "#one,#two"),
        ("CHINWAG_SOMETHING_ELSE", "ignored: not a key"),
        ("HOME", "/root"),
    ];
    let cfg = load(None, &env, &[]).expect("valid");
    assert_eq!(cfg.tls_listen, ["127.0.0.1:7001".parse().expect("addr"), "[::1]:7002".parse().expect("addr")]);
    assert!(cfg.optional_listen.iter().all(|a| !cfg.tls_listen.contains(a)), "explicit listeners are required");
    assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9667".parse().expect("addr")));
    assert!(cfg.log.json);
    assert_eq!(cfg.history_retention, Some(Duration::from_secs(45 * 24 * 3600)));
    assert_eq!(cfg.data_dir, PathBuf::from("/srv/chinwag"));
    assert_eq!(cfg.core.password.as_deref(), Some("letmein"));
    assert_eq!(cfg.core.motd, ["Hello, world", "Be nice"]);
    assert_eq!(cfg.core.default_channels, ["#one", "#two"]);
}

#[test]
fn an_unknown_key_in_the_file_is_named_with_the_valid_ones() {
    let text = error(Some("[server]\nnmae = \"x\"\n"), &[], &[]);
    assert_mentions(&text, &["nmae", "line 2", "name", "network"]);
    let text = error(Some("[serverr]\nname = \"x\"\n"), &[], &[]);
    assert_mentions(&text, &["serverr", "listen"]);
}

#[test]
fn a_value_of_the_wrong_type_in_the_file_is_named() {
    let text = error(Some("[limits]\nsendq = \"lots\"\n"), &[], &[]);
    assert_mentions(&text, &["sendq", "line 2", "\"lots\"", "expected"]);
    let text = error(Some("[server]\nname = \n"), &[], &[]);
    assert_mentions(&text, &["line 2"]);
}

#[test]
fn an_unusable_value_names_the_key_the_value_what_is_valid_and_where_it_was_set() {
    let text = error(Some("[listen]\ntls = [\"0.0.0.0:6697\", \"everywhere\"]\n"), &[], &[]);
    assert_mentions(&text, &["listen.tls", "\"everywhere\"", "ADDR:PORT", "chinwag.toml"]);
    let text = error(None, &[("CHINWAG_LISTEN_METRICS", "localhost")], &[]);
    assert_mentions(
        &text,
        &["listen.metrics", "\"localhost\"", "ADDR:PORT", "environment variable CHINWAG_LISTEN_METRICS"],
    );
    let text = error(None, &[], &[("storage.sqlite_synchronous", "sometimes")]);
    assert_mentions(&text, &["storage.sqlite_synchronous", "sometimes", "\"full\" or \"normal\"", "flag --set"]);
    let text = error(None, &[], &[("limits.ping_timeout", "0")]);
    assert_mentions(&text, &["limits.ping_timeout", "at least 1"]);
    let text = error(None, &[], &[("server.name", "not a host")]);
    assert_mentions(&text, &["server.name", "host name"]);
    let text = error(Some("[server]\ndefault_rooms = [\"general\"]\n"), &[], &[]);
    assert_mentions(&text, &["server.default_rooms", "general", "#"]);
    let text = error(None, &[], &[("log.level", "chinwag=loudest")]);
    assert_mentions(&text, &["log.level", "chinwag=loudest", "\"info\""]);
}

#[test]
fn tls_certificate_and_key_go_together() {
    let text = error(Some("[tls]\ncert = \"/etc/cert.pem\"\n"), &[], &[]);
    assert_mentions(&text, &["tls.cert", "/etc/cert.pem", "tls.key must be set too", "chinwag.toml"]);
    let text = error(None, &[("CHINWAG_TLS_KEY", "/etc/key.pem")], &[]);
    assert_mentions(&text, &["tls.key", "tls.cert must be set too", "CHINWAG_TLS_KEY"]);
}

#[test]
fn environment_and_flag_values_of_the_wrong_type_name_their_origin() {
    let text = error(None, &[("CHINWAG_LIMITS_SENDQ", "many")], &[]);
    assert_mentions(&text, &["environment variable CHINWAG_LIMITS_SENDQ", "limits.sendq", "whole number"]);
    let text = error(None, &[], &[("log.file", "maybe")]);
    assert_mentions(&text, &["flag --set log.file", "true or false"]);
    let text = error(None, &[], &[("limits.sendqq", "5")]);
    assert_mentions(&text, &["limits.sendqq", "--print-config"]);
    let text = error(None, &[], &[("limits.sendq", "-5")]);
    assert_mentions(&text, &["limits.sendq", "-5"]);
}

#[test]
fn operators_need_a_name_and_an_argon2_hash() {
    let hash = chinwag_server::hash_password("operator secret").expect("hash");
    let good = format!("[[oper]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n");
    let cfg = load(Some(&good), &[], &[]).expect("valid");
    assert_eq!(cfg.core.opers.len(), 1);
    assert_eq!(cfg.core.opers[0].name, "alice");

    let text = error(Some("[[oper]]\nname = \"alice\"\npassword_hash = \"operator secret\"\n"), &[], &[]);
    assert_mentions(&text, &["oper[0].password_hash", "chinwag admin hash-password"]);
    assert!(!text.contains("operator secret"), "the error must not repeat what was there: {text}");
    let text = error(Some("[[oper]]\nname = \"alice\"\n"), &[], &[]);
    assert_mentions(&text, &["password_hash"]);
    let twice = format!("{good}{}", good.replace("alice", "ALICE"));
    let text = error(Some(&twice), &[], &[]);
    assert_mentions(&text, &["oper[1].name", "another"]);
    let inline = format!("[{{name = \"bob\", password_hash = \"{hash}\"}}]");
    let cfg = load(None, &[("CHINWAG_OPER", inline.as_str())], &[]).expect("operators from the environment");
    assert_eq!(cfg.core.opers[0].name, "bob");
}

#[test]
fn a_missing_file_is_an_error_that_names_it() {
    let source = ConfigSource { file: Some(PathBuf::from("/nonexistent/chinwag.toml")), ..ConfigSource::default() };
    let text = format!("{:#}", source.load().expect_err("missing file"));
    assert_mentions(&text, &["/nonexistent/chinwag.toml"]);
}

#[test]
fn account_registration_settings_come_from_any_layer_and_are_checked() {
    let cfg = load(None, &[], &[]).expect("valid");
    assert_eq!(cfg.core.accounts, chinwag_core::AccountSettings::default());
    assert_eq!(cfg.core.accounts.min_password_length, 8);
    let file = "[accounts]\nmin_password_length = 12\nemail_required = true\n";
    let env = [("CHINWAG_ACCOUNTS_REGISTRATION_BEFORE_CONNECT", "false")];
    let cfg = load(Some(file), &env, &[]).expect("valid");
    let expected = chinwag_core::AccountSettings {
        min_password_length: 12,
        registration_before_connect: false,
        email_required: true,
    };
    assert_eq!(cfg.core.accounts, expected);
    let text = error(None, &[], &[("accounts.min_password_length", "0")]);
    assert_mentions(&text, &["accounts.min_password_length", "1 to 256"]);
    let text = error(None, &[], &[("accounts.min_password_length", "300")]);
    assert_mentions(&text, &["accounts.min_password_length", "300"]);
}

/// `storage.backend` picks the store: SQLite by default, PostgreSQL with its URL (from the file,
/// or the environment to keep the password out of it); a bad pair is refused naming the key,
/// and the URL's password is never repeated.
#[test]
fn the_store_is_chosen_by_storage_backend_and_url() {
    use chinwag_server::StoreBackend;
    assert_eq!(load(None, &[], &[]).expect("defaults").store, StoreBackend::Sqlite);
    let file = "[storage]\nbackend = \"postgres\"\nurl = \"postgres://chinwag@db.example:5432/chinwag\"\n";
    assert_eq!(
        load(Some(file), &[], &[]).expect("postgres").store,
        StoreBackend::Postgres { url: "postgres://chinwag@db.example:5432/chinwag".into() }
    );
    let env = [("CHINWAG_STORAGE_BACKEND", "postgres"), ("CHINWAG_STORAGE_URL", "postgres://c:pw@h/db")];
    let cfg = load(None, &env, &[]).expect("from the environment");
    assert_eq!(cfg.store, StoreBackend::Postgres { url: "postgres://c:pw@h/db".into() });
    assert!(!format!("{:?}", cfg.store).contains("pw"), "Debug hides the password");

    let text = error(None, &[], &[("storage.backend", "postgres")]);
    assert_mentions(&text, &["storage.url", "needs a URL"]);
    let text = error(None, &[], &[("storage.backend", "mysql")]);
    assert_mentions(&text, &["storage.backend", "\"sqlite\" or \"postgres\""]);
    let text = error(None, &[], &[("storage.backend", "postgres"), ("storage.url", "mysql://u:hunter2@h/db")]);
    assert_mentions(&text, &["storage.url", "postgres://USER:PASSWORD@HOST:PORT/DATABASE"]);
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn plain_http_for_the_web_stays_on_loopback_unless_allowed() {
    let text = error(None, &[("CHINWAG_WEB_LISTEN_PLAIN", "0.0.0.0:8080")], &[]);
    assert_mentions(&text, &["web.listen_plain", "0.0.0.0:8080", "loopback", "web.plain_public"]);
    let cfg = load(None, &[("CHINWAG_WEB_LISTEN_PLAIN", "127.0.0.1:8080,[::1]:8080")], &[]).expect("loopback is fine");
    assert_eq!(cfg.web.listen_plain.len(), 2);
    let cfg = load(None, &[("CHINWAG_WEB_LISTEN_PLAIN", "0.0.0.0:8080")], &[("web.plain_public", "true")])
        .expect("allowed explicitly");
    assert_eq!(cfg.web.listen_plain, ["0.0.0.0:8080".parse().expect("addr")]);
    let text = error(None, &[], &[("web.origins", "chat.example.org")]);
    assert_mentions(&text, &["web.origins", "scheme://host"]);
    let cfg = load(None, &[], &[("web.origins", "HTTPS://Chat.Example.org/"), ("web.trusted_proxies", "10.0.0.1")])
        .expect("an origin and a proxy");
    assert_eq!(cfg.web.origins, ["https://chat.example.org"]);
    let cfg = load(None, &[], &[("web.trusted_proxies", "10.0.0.0/8, fd00::/8, ::1")]).expect("ranges and addresses");
    let shown: Vec<String> = cfg.web.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.0/8", "fd00::/8", "::1"]);
    assert!(cfg.web.trusted_proxies[0].contains("10.200.0.1".parse().expect("ip")));
    assert!(cfg.web.trusted_proxies[1].contains("fd12::1".parse().expect("ip")));
    assert!(!cfg.web.trusted_proxies.iter().any(|r| r.contains("192.0.2.1".parse().expect("ip"))));
    for bad in ["10.0.0.0/33", "10.1.0.0/8", "proxy.example.org"] {
        let text = error(None, &[], &[("web.trusted_proxies", bad)]);
        assert_mentions(&text, &["web.trusted_proxies", bad, "not an IP address or CIDR range", "10.0.0.0/8"]);
    }
    let cfg = load(None, &[], &[("web.listen", "")]).expect("an empty list turns HTTPS off");
    assert!(cfg.web.listen.is_empty());
    assert!(load(None, &[], &[]).expect("defaults").web.allowed_hosts.is_empty());
    let cfg = load(None, &[("CHINWAG_WEB_ALLOWED_HOSTS", "Chat.LAN, irc.example.org.")], &[]).expect("names");
    assert_eq!(cfg.web.allowed_hosts, ["chat.lan", "irc.example.org"]);
    for bad in ["chat.lan:8080", "http://chat.lan", "[::1]"] {
        let text = error(None, &[], &[("web.allowed_hosts", bad)]);
        assert_mentions(&text, &["web.allowed_hosts", bad, "not a host name", "chat.example.org"]);
    }
}

/// `[cluster]`: off by default; a node needs NATS URLs, a name of its own and the PostgreSQL
/// store, and every mistake names its key without repeating a password.
#[test]
fn a_cluster_node_needs_nats_a_node_name_and_the_postgres_store() {
    assert!(load(None, &[], &[]).expect("defaults").cluster.is_none());
    let postgres = [("storage.backend", "postgres"), ("storage.url", "postgres://c@db/chinwag")];
    let with = |extra: &[(&'static str, &'static str)]| postgres.iter().chain(extra).copied().collect::<Vec<_>>();

    let cfg =
        load(None, &[], &with(&[("cluster.url", "nats://127.0.0.1:4222"), ("cluster.node", "a")])).expect("a node");
    let cluster = cfg.cluster.expect("clustered");
    assert_eq!((cluster.name.as_str(), cluster.node.as_str()), ("chinwag", "a"));
    let env = [("CHINWAG_CLUSTER_URL", "nats://u:sekrit@n1:4222, nats://n2:4222"), ("CHINWAG_CLUSTER_NAME", "net-2")];
    let cfg = load(None, &env, &with(&[("cluster.node", "b")])).expect("from the environment");
    let cluster = cfg.cluster.expect("clustered");
    assert_eq!(cluster.name.as_str(), "net-2");
    assert!(!format!("{cluster:?}").contains("sekrit"), "Debug hides the password: {cluster:?}");

    let text = error(None, &[], &[("cluster.url", "nats://127.0.0.1:4222"), ("cluster.node", "a")]);
    assert_mentions(&text, &["cluster.url", "PostgreSQL store"]);
    let text = error(None, &[], &with(&[("cluster.url", "nats://127.0.0.1:4222")]));
    assert_mentions(&text, &["cluster.node", "name of its own"]);
    let text = error(None, &[], &with(&[("cluster.url", "http://u:sekrit@h:4222"), ("cluster.node", "a")]));
    assert_mentions(&text, &["cluster.url", "nats://HOST:PORT"]);
    assert!(!text.contains("sekrit"), "{text}");
    for (key, value) in [("cluster.name", "My.Net"), ("cluster.node", "node_1")] {
        let text = error(None, &[], &with(&[("cluster.url", "nats://h:4222"), ("cluster.node", "a"), (key, value)]));
        assert_mentions(&text, &[key, value, "a-z, 0-9"]);
    }
    let text = error(None, &[], &[("cluster.node", "a")]);
    assert_mentions(&text, &["cluster.node", "only with cluster.url"]);
}
