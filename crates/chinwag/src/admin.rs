//! `chinwag admin`: administer a running server over its control socket, and the same commands
//! typed at the server's console. Also the server's signal handling (SIGTERM/SIGINT stop,
//! a second one forces, SIGHUP reloads) and `chinwag admin hash-password`.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chinwag_client::neutral::{neutralise_json, neutralise_lines};
use chinwag_server::{AdminReply, Control, CONTROL_SOCKET};
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = chinwag_server::ADMIN_HELP)]
pub struct AdminArgs {
    /// The data directory of the server to talk to [default: the user's data directory].
    #[arg(long, env = "CHINWAG_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Print the answer as JSON (for scripts) instead of a table.
    #[arg(long)]
    json: bool,

    /// Repeat the command every SECONDS, redrawing the screen (for `stats`).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<u64>,

    /// The command and its arguments (see below), e.g. `users` or `kill bob spamming`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(args: AdminArgs) -> Result<()> {
    if args.command.first().is_some_and(|c| c == "hash-password") {
        return hash_password();
    }
    if args.command.first().is_some_and(|c| c == "migrate-store") {
        return migrate_store(&args.command[1..]);
    }
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => {
            dirs::data_dir().context("cannot tell where the user's data directory is; pass --data-dir")?.join("chinwag")
        }
    };
    let mut conn = connect(&data_dir)?;
    loop {
        let reply = conn.ask(&args.command)?;
        // Clear the screen and go home, so the numbers redraw in place.
        let clear = if args.watch.is_some() { "\x1b[2J\x1b[H" } else { "" };
        let body = shown(&reply, args.json)?;
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`chinwag admin stats --watch | head`) ends the command quietly.
        if writeln!(stdout, "{clear}{body}").and_then(|()| stdout.flush()).is_err() {
            return Ok(());
        }
        drop(stdout);
        if !reply.ok {
            std::process::exit(1);
        }
        match args.watch {
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
            None => return Ok(()),
        }
    }
}

/// `chinwag admin migrate-store --from sqlite:PATH --to postgres://…`: copies a stopped
/// server's SQLite store into an empty PostgreSQL database and checks every table's count
/// (`chinwag_store::migrate`). Needs no running server.
fn migrate_store(args: &[String]) -> Result<()> {
    const USAGE: &str =
        "usage: chinwag admin migrate-store --from sqlite:PATH --to postgres://USER:PASSWORD@HOST:PORT/DATABASE";
    let (mut from, mut to) = (None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--from" => from = rest.next(),
            "--to" => to = rest.next(),
            other => bail!("migrate-store: unexpected {other:?}\n{USAGE}"),
        }
    }
    let (Some(from), Some(to)) = (from, to) else { bail!("migrate-store needs --from and --to\n{USAGE}") };
    let Some(path) = from.strip_prefix("sqlite:") else {
        bail!("migrate-store --from {from:?}: expected sqlite:PATH, e.g. sqlite:/var/lib/chinwag/chinwag.db\n{USAGE}")
    };
    if !to.starts_with("postgres://") && !to.starts_with("postgresql://") {
        bail!("migrate-store --to {}: expected a PostgreSQL URL\n{USAGE}", chinwag_store::redact_url(to));
    }
    let path = Path::new(path);
    if !path.is_file() {
        bail!(
            "migrate-store --from: {} is not a file (stop the server, then give its DATA_DIR/chinwag.db)",
            path.display()
        );
    }
    let report = chinwag_store::migrate::sqlite_to_postgres(path, to)
        .with_context(|| format!("copying {} into {}", path.display(), chinwag_store::redact_url(to)))?;
    println!(
        "copied {} into {}; rows per table, counted on both sides:",
        path.display(),
        chinwag_store::redact_url(to)
    );
    for (table, rows) in &report.tables {
        println!("  {table:<22} {rows}");
    }
    println!("Start chinwag with --store (or storage.backend = \"postgres\" and storage.url) to use it.");
    Ok(())
}

/// A reply as printed: users' nicks, topics and reasons are text from the network, so what a
/// terminal would obey is shown instead (in JSON too: its readers print its strings).
fn shown(reply: &AdminReply, json: bool) -> Result<String> {
    if json {
        let mut data = reply.data.clone();
        neutralise_json(&mut data);
        Ok(serde_json::to_string_pretty(&data)?)
    } else {
        Ok(neutralise_lines(&reply.text).into_owned())
    }
}

/// A connection to a server's control socket.
struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// Connects, refusing a socket owned by someone else (it could be an impostor collecting
/// commands), and explains the usual failures.
fn connect(data_dir: &Path) -> Result<Connection> {
    let path = data_dir.join(CONTROL_SOCKET);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no chinwag server is running with the data directory {} (there is no {}); pass the server's --data-dir",
            data_dir.display(),
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    };
    let me = chinwag_server::effective_uid();
    if me.is_some_and(|u| u != 0 && u != meta.uid()) {
        bail!(
            "{} belongs to uid {}, not to you; run chinwag admin as the server's user (e.g. sudo -u <user> chinwag admin …)",
            path.display(),
            meta.uid()
        );
    }
    let stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "permission denied on {}: only its owner (uid {}) may use it; run chinwag admin as that user",
            path.display(),
            meta.uid()
        ),
        std::io::ErrorKind::ConnectionRefused => {
            anyhow::anyhow!("the server that created {} is not running any more", path.display())
        }
        _ => anyhow::Error::new(e).context(format!("connecting to {}", path.display())),
    })?;
    let writer = stream.try_clone().context("cloning the control socket")?;
    Ok(Connection { reader: BufReader::new(stream), writer })
}

impl Connection {
    fn ask(&mut self, args: &[String]) -> Result<AdminReply> {
        let mut line = serde_json::to_vec(&serde_json::json!({ "args": args }))?;
        line.push(b'\n');
        self.writer.write_all(&line).context("sending the command")?;
        let mut answer = String::new();
        self.reader.read_line(&mut answer).context("reading the answer")?;
        if answer.is_empty() {
            bail!("the server closed the control connection without answering");
        }
        serde_json::from_str(&answer).context("the server's answer is not valid JSON")
    }
}

/// Reads a password from standard input and prints its Argon2id hash for `[[oper]]`.
fn hash_password() -> Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (it will be shown as you type; or pipe it in): ");
    }
    let mut password = String::new();
    stdin.lock().read_line(&mut password).context("reading the password")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.len() < 8 {
        bail!("use a password of at least 8 characters");
    }
    let hash = chinwag_server::hash_password(password).map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    println!("{hash}");
    Ok(())
}

/// SIGTERM or SIGINT: stop gracefully; a second one: stop now. SIGHUP: reload.
pub async fn signals(control: Control) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers; stop the server with `chinwag admin shutdown`");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => control.stop("Server shutting down", None),
            _ = int.recv() => control.stop("Server shutting down", None),
            _ = hup.recv() => {
                if let Err(e) = control.reload("SIGHUP").await {
                    tracing::error!(error = %format!("{e:#}"), "reload failed; the old configuration stays");
                }
            }
        }
    }
}

/// The console: when standard input is a terminal, admin commands typed there run like
/// `chinwag admin` ones. It reads on a thread of its own (stdin blocks).
pub fn spawn_console(control: Control) {
    if !std::io::stdin().is_terminal() {
        return;
    }
    let runtime = tokio::runtime::Handle::current();
    println!("Type `help` for console commands.");
    std::thread::Builder::new()
        .name("chinwag-console".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
                if words.is_empty() {
                    continue;
                }
                let reply = runtime.block_on(control.execute(&words, "console"));
                println!("{}", neutralise_lines(&reply.text));
                if control.is_stopping() {
                    break;
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::warn!(error = %e, "no console: cannot start its thread"));
}

#[cfg(test)]
mod tests {
    use chinwag_server::AdminReply;
    use serde_json::json;

    use super::shown;

    /// `admin rooms` as a user's topic made it: ESC, OSC and a right-to-left override.
    #[test]
    fn users_text_in_a_reply_is_shown_not_obeyed() {
        let topic = "\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}cipot";
        let reply = AdminReply {
            ok: true,
            text: format!("ROOM     MEMBERS  TOPIC\n#general 2        {topic}\n1 room(s)"),
            data: json!([{ "name": "#general", "members": 2, "topic": topic }]),
        };
        let text = shown(&reply, false).expect("text");
        assert_eq!(text, "ROOM     MEMBERS  TOPIC\n#general 2        ␛[2J␛]0;owned␇[U+202E]cipot\n1 room(s)");
        let json = shown(&reply, true).expect("JSON");
        assert!(!json.contains("\\u001b") && !json.contains('\u{202e}'), "{json}");
        assert!(json.contains("␛[2J␛]0;owned␇[U+202E]cipot"), "{json}");
    }
}
