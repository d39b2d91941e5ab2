//! Where configuration values come from, in order of precedence: flags, then environment
//! variables, then the file, then the defaults.
//!
//! Every layer is turned into TOML values keyed by their dotted path (`listen.metrics`) and laid
//! over the file's table, so every key of the file can be set from the environment
//! (`CHINWAG_LISTEN_METRICS`) or a flag (`--set listen.metrics=…`) without code of its own.
//! Each layer is checked on its own before merging, so an error says which file line, variable
//! or flag holds the bad value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use toml::{Table, Value};

use super::raw::{Origins, RawConfig};
use super::ServerConfig;

/// The documented default configuration, printed by `chinwag serve --print-config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Prefix of the environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "CHINWAG_";

/// Everything needed to build (and later rebuild, on reload) the configuration.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// The TOML file, if any.
    pub file: Option<PathBuf>,
    /// Environment variables, captured at start (name, value).
    pub env: Vec<(String, String)>,
    /// Flags as (dotted key, value, how the flag was spelt), in the order given.
    pub flags: Vec<(String, FlagValue, String)>,
    /// Used when `data_dir` is empty: the user's data directory.
    pub default_data_dir: Option<PathBuf>,
}

/// A value given on the command line.
#[derive(Clone, Debug)]
pub enum FlagValue {
    /// Text, converted like an environment variable to the key's type.
    Text(String),
    /// A repeatable flag's values: a list.
    List(Vec<String>),
}

/// Where each key's value came from, for error messages.
#[derive(Debug, Default)]
struct Provenance(BTreeMap<String, String>);

impl Origins for Provenance {
    fn origin_of(&self, key: &str) -> String {
        // Keys such as `oper[0].name` come from their table's origin.
        let base = key.split(['[', '.']).next().unwrap_or(key);
        self.0.get(key).or_else(|| self.0.get(base)).cloned().unwrap_or_else(|| "the default".into())
    }
}

impl ConfigSource {
    /// Reads the file and applies the environment and flags. Fails, naming the key, on any
    /// unknown key or unusable value: a server never starts half-configured.
    pub fn load(&self) -> Result<ServerConfig> {
        let (raw, origins) = self.merge()?;
        let dir = self.default_data_dir.clone();
        let mut cfg = raw.validate(move || dir, &origins)?;
        cfg.source = Some(self.clone());
        Ok(cfg)
    }

    /// The first stage only: the file, the environment and the flags merged and type-checked.
    pub fn raw(&self) -> Result<RawConfig> {
        Ok(self.merge()?.0)
    }

    fn merge(&self) -> Result<(RawConfig, Provenance)> {
        let mut origins = Provenance::default();
        let mut table = match &self.file {
            Some(path) => {
                let table = read_file(path)?;
                for key in leaf_keys(&table) {
                    origins.0.insert(key, format!("file {}", path.display()));
                }
                table
            }
            None => Table::new(),
        };
        let defaults = default_table();
        for (key, text, origin) in self.env_overrides(&defaults) {
            set_checked(&mut table, &defaults, &key, &text, &origin)?;
            origins.0.insert(key, origin);
        }
        for (key, value, origin) in &self.flags {
            match value {
                FlagValue::Text(text) => set_checked(&mut table, &defaults, key, text, origin)?,
                FlagValue::List(items) => {
                    let value = Value::Array(items.iter().cloned().map(Value::String).collect());
                    set_value_checked(&mut table, key, value, origin)?;
                }
            }
            origins.0.insert(key.clone(), origin.clone());
        }
        let raw: RawConfig = table.try_into().context("the merged configuration is not valid")?;
        Ok((raw, origins))
    }

    /// `(key, value, origin)` for every `CHINWAG_…` variable that names a key.
    fn env_overrides(&self, defaults: &Table) -> Vec<(String, String, String)> {
        let known = env_names(defaults);
        let mut out = Vec::new();
        for (name, value) in &self.env {
            // `CHINWAG_CONFIG` names the file itself, not a key.
            if !name.starts_with(ENV_PREFIX) || name == "CHINWAG_CONFIG" {
                continue;
            }
            match known.get(name) {
                Some(key) => out.push((key.clone(), value.clone(), format!("environment variable {name}"))),
                None => tracing::debug!(variable = %name, "ignoring an environment variable that names no key"),
            }
        }
        out
    }
}

/// The defaults as a TOML table (what every key's type is judged against).
fn default_table() -> Table {
    DEFAULT_CONFIG.parse().unwrap_or_default()
}

/// `CHINWAG_SECTION_KEY` → `section.key` for every key of the defaults, and `CHINWAG_OPER`.
fn env_names(defaults: &Table) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for key in leaf_keys(defaults).into_iter().chain(["oper".to_owned()]) {
        out.insert(format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase()), key);
    }
    out
}

/// Dotted paths of every non-table value (arrays count as values).
fn leaf_keys(table: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            Value::Table(inner) => out.extend(leaf_keys(inner).into_iter().map(|sub| format!("{k}.{sub}"))),
            _ => out.push(k.clone()),
        }
    }
    out
}

fn read_file(path: &Path) -> Result<Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
    // The typed parse gives errors with the line, the key and the valid keys.
    if let Err(e) = toml::from_str::<RawConfig>(&text) {
        bail!("in the configuration file {}: {e}", path.display());
    }
    text.parse::<Table>().with_context(|| format!("parsing {}", path.display()))
}

/// Converts text to the type the key has in the defaults, then sets it.
fn set_checked(table: &mut Table, defaults: &Table, key: &str, text: &str, origin: &str) -> Result<()> {
    let value = match lookup(defaults, key) {
        None if key == "oper" => parse_inline(text),
        None => bail!(
            "there is no configuration key {key:?} (set by {origin}); `chinwag serve --print-config` lists them all"
        ),
        Some(Value::Boolean(_)) => match text {
            "true" | "1" | "yes" => Value::Boolean(true),
            "false" | "0" | "no" => Value::Boolean(false),
            _ => bail!("{key} = {text:?}: expected true or false (set by {origin})"),
        },
        Some(Value::Integer(_)) => match text.trim().parse::<i64>() {
            Ok(n) => Value::Integer(n),
            Err(_) => bail!("{key} = {text:?}: expected a whole number (set by {origin})"),
        },
        // A TOML array (`["a, b", "c"]`) when it is one, else comma-separated items.
        Some(Value::Array(_)) => match parse_inline(text) {
            array @ Value::Array(_) => array,
            _ => Value::Array(
                text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_owned())).collect(),
            ),
        },
        Some(_) => Value::String(text.to_owned()),
    };
    set_value_checked(table, key, value, origin)
}

/// A TOML inline value (`oper`'s array of tables, a list with commas inside its items), or the
/// text itself as a string.
fn parse_inline(text: &str) -> Value {
    format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or(Value::String(text.to_owned()))
}

fn lookup<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// Sets `key` after checking that the value alone has the right shape for it.
fn set_value_checked(table: &mut Table, key: &str, value: Value, origin: &str) -> Result<()> {
    let mut alone = Table::new();
    insert(&mut alone, key, value.clone());
    if let Err(e) = alone.try_into::<RawConfig>() {
        bail!("{key} = {value}: {} (set by {origin})", e.to_string().trim());
    }
    insert(table, key, value);
    Ok(())
}

fn insert(table: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = table.entry(head.to_owned()).or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            if let Value::Table(inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}
