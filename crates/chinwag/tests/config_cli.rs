//! `chinwag serve`'s configuration from the command line: `--print-config`, the shipped sample,
//! the systemd unit, and a bad configuration that stops the start before anything is created.

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
