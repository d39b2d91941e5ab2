//! `chinwag serve`'s configuration from the command line: `--print-config`, the shipped sample,
//! the systemd unit, and a bad configuration that stops the start before anything is created.

mod support;

use std::path::Path;
use std::process::Command;

fn chinwag(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(args)
        .env_remove("CHINWAG_CONFIG")
        .env_remove("CHINWAG_DATA_DIR")
        .output()
        .expect("run chinwag")
}

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

#[test]
fn print_config_prints_the_documented_defaults_and_the_sample_is_the_same() {
    let out = chinwag(&["serve", "--print-config"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(printed, chinwag_server::DEFAULT_CONFIG);
    assert_eq!(
        repo_file("contrib/chinwag.toml"),
        printed,
        "contrib/chinwag.toml is stale: regenerate it with `chinwag serve --print-config > contrib/chinwag.toml`"
    );
}

#[test]
fn the_printed_config_starts_a_server_and_a_bad_one_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("chinwag.toml");
    let data = dir.path().join("data");
    std::fs::write(&config, "[listen]\nmetrics = \"127.0.0.1:not-a-port\"\n").expect("write");
    let out =
        chinwag(&["serve", "--config", config.to_str().expect("path"), "--data-dir", data.to_str().expect("path")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listen.metrics") && stderr.contains("not-a-port") && stderr.contains("ADDR:PORT"),
        "{stderr}"
    );
    assert!(!data.exists(), "nothing is created for a configuration that does not validate");

    let out = chinwag(&["serve", "--set", "limits.sendq", "--data-dir", data.to_str().expect("path")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY=VALUE"), "{out:?}");

    // The printed defaults are a working configuration (listeners moved to free ports by flag).
    std::fs::write(&config, chinwag_server::DEFAULT_CONFIG).expect("write");
    let config_arg = config.to_str().expect("path");
    let server = support::process::ServerProcess::start_with(
        &data,
        &["127.0.0.1:0"],
        &["127.0.0.1:0"],
        &["--config", config_arg],
    );
    assert_eq!(server.tls.len(), 1);
}

#[test]
fn the_systemd_unit_is_hardened() {
    let unit = repo_file("contrib/chinwag.service");
    for line in
        ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=chinwag", "ExecReload="]
    {
        assert!(unit.lines().any(|l| l.trim() == line || l.starts_with(line)), "the unit lacks {line}");
    }
}

#[test]
fn hash_password_prints_an_argon2id_hash_of_standard_input() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["admin", "hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run hash-password");
    child.stdin.take().expect("stdin").write_all(b"operator secret\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(chinwag_server::verify_password(hash.trim(), "operator secret"));
    assert!(!hash.contains("operator secret"));
}

#[test]
fn a_flag_wins_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("chinwag.toml");
    std::fs::write(&config, "[listen]\nmetrics = \"file is wrong\"\n").expect("write");
    let data = dir.path().join("data");
    let config_arg = config.to_str().expect("path");
    let data_arg = data.to_str().expect("path");
    let env = [("CHINWAG_LISTEN_METRICS", "env is wrong too")];

    let serve = |extra: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chinwag"));
        command.args(["serve", "--config", config_arg, "--data-dir", data_arg]).args(extra);
        command.envs(env.iter().copied()).env_remove("CHINWAG_CONFIG");
        command.output().expect("run chinwag serve")
    };
    let out = serve(&[], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"file is wrong\""), "{out:?}");
    let out = serve(&[], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"env is wrong too\"") && stderr.contains("CHINWAG_LISTEN_METRICS"), "{stderr}");

    let server = support::process::ServerProcess::start_with_env(
        &data,
        &["127.0.0.1:0"],
        &["127.0.0.1:0"],
        &["--config", config_arg, "--metrics-listen", "127.0.0.1:0"],
        &env,
    );
    assert!(server.metrics.is_some(), "the flag's metrics listener is up:\n{}", server.log_tail());
}

/// `--cluster` is parsed and checked (it needs the PostgreSQL store and a node name) before
/// anything is created; a NATS that cannot be reached is said plainly, without the store's
/// password.
#[test]
fn cluster_flags_are_checked_and_an_unreachable_nats_is_said_plainly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("path");
    let cluster = ["serve", "--data-dir", data_arg, "--cluster", "nats://127.0.0.1:4222"];

    let out = chinwag(&[&cluster[..], &["--node-name", "a"]].concat());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cluster.url") && stderr.contains("PostgreSQL store"), "{stderr}");

    let store = ["--store", "postgres://chinwag:sekrit@127.0.0.1:5432/chinwag"];
    let out = chinwag(&[&cluster[..], &store[..], &["--cluster-name", "Bad.Name", "--node-name", "a"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("cluster.name") && stderr.contains("--cluster-name"), "{stderr}");

    assert!(!data.exists(), "a refused cluster node creates nothing");

    // Port 1 on loopback: nothing listens there.
    let nowhere = ["serve", "--data-dir", data_arg, "--cluster", "nats://127.0.0.1:1", "--node-name", "a"];
    let out = chinwag(&[&nowhere[..], &store[..], &["--listen", "127.0.0.1:0", "--no-web"]].concat());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to NATS at nats://127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("sekrit"), "{stderr}");
}
