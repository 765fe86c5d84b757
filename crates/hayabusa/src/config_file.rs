//! `--config FILE`: settings from a TOML file, beneath flags and environment variables.
//!
//! Every setting that has an environment variable `HAYABUSA_<NAME>` can be given in
//! the file as `<name> = …` (lower case, as the flag without its dashes and with `_`
//! for `-`): `event_log = "nats://127.0.0.1:4222"`, `max_read_wait_ms = 2000`,
//! `trusted_proxies = ["10.0.0.0/8"]`. The file's values become the flags' defaults,
//! so a flag beats the environment, which beats the file, which beats the built-in
//! default. An unknown key, or a value that is not a string, number, boolean or list
//! of those, is an error naming the key: a misspelt setting is never silently ignored.

use anyhow::{Context, bail};
use clap::Command;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable naming the config file (the flag is `--config`).
pub const CONFIG_ENV: &str = "HAYABUSA_CONFIG";

/// The config file named by `--config FILE` / `--config=FILE` in `args` (the program
/// name first), or else by `HAYABUSA_CONFIG`.
pub fn path_from(args: &[OsString]) -> Option<PathBuf> {
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return rest.next().map(PathBuf::from);
        }
        if let Some(value) = arg.to_str().and_then(|arg| arg.strip_prefix("--config=")) {
            return Some(PathBuf::from(value));
        }
    }
    std::env::var_os(CONFIG_ENV)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// Reads `path` and makes its settings the defaults of the matching arguments of
/// `command`'s subcommands.
pub fn apply(command: Command, path: &Path) -> anyhow::Result<Command> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    apply_str(command, &text).with_context(|| format!("in the config file {}", path.display()))
}

/// [`apply`] on the file's text.
pub fn apply_str(mut command: Command, text: &str) -> anyhow::Result<Command> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    for (key, value) in table {
        let value = flag_value(&key, &value)?;
        let env = format!("HAYABUSA_{}", key.to_ascii_uppercase());
        // (subcommand, argument id) of every argument reading this variable.
        let targets: Vec<(String, String)> = command
            .get_subcommands()
            .flat_map(|sub| {
                sub.get_arguments()
                    .filter(|arg| arg.get_env().is_some_and(|name| *name == *env))
                    .map(|arg| (sub.get_name().to_string(), arg.get_id().to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if targets.is_empty() || key.chars().any(|c| c.is_ascii_uppercase()) {
            bail!("unknown setting {key:?}");
        }
        for (sub, id) in targets {
            let value = value.clone();
            command = command.mut_subcommand(sub, |sub| {
                sub.mut_arg(id, |arg| arg.default_value(value).required(false))
            });
        }
    }
    Ok(command)
}

/// A TOML value as the flag's text (lists as the flag's comma-separated form).
fn flag_value(key: &str, value: &toml::Value) -> anyhow::Result<String> {
    let scalar = |value: &toml::Value| match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        toml::Value::Boolean(flag) => Ok(flag.to_string()),
        _ => bail!("setting {key:?}: expected a string, number, boolean or a list of those"),
    };
    match value {
        toml::Value::Array(items) => Ok(items
            .iter()
            .map(scalar)
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(",")),
        other => scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgMatches};

    fn command() -> Command {
        Command::new("hayabusa").subcommand(
            Command::new("serve")
                .arg(
                    Arg::new("listen")
                        .long("listen")
                        .env("HAYABUSA_TEST_CONFIG_LISTEN")
                        .default_value("127.0.0.1:8080"),
                )
                .arg(
                    Arg::new("origins")
                        .long("origins")
                        .env("HAYABUSA_TEST_CONFIG_ORIGINS")
                        .value_delimiter(','),
                ),
        )
    }

    fn serve(matches: &ArgMatches) -> &ArgMatches {
        matches.subcommand_matches("serve").unwrap()
    }

    #[test]
    fn the_file_sets_defaults_that_a_flag_beats() {
        let file = "test_config_listen = \"0.0.0.0:1\"\ntest_config_origins = [\"a\", \"b\"]";
        let matches = apply_str(command(), file)
            .unwrap()
            .get_matches_from(["hayabusa", "serve"]);
        assert_eq!(
            serve(&matches).get_one::<String>("listen").unwrap(),
            "0.0.0.0:1"
        );
        let origins: Vec<&String> = serve(&matches).get_many("origins").unwrap().collect();
        assert_eq!(origins, ["a", "b"]);
        let matches = apply_str(command(), file).unwrap().get_matches_from([
            "hayabusa",
            "serve",
            "--listen",
            "127.0.0.1:2",
        ]);
        assert_eq!(
            serve(&matches).get_one::<String>("listen").unwrap(),
            "127.0.0.1:2"
        );
    }

    #[test]
    fn an_unknown_or_misshapen_setting_is_an_error_naming_it() {
        let error = apply_str(command(), "lissten = \"x\"").unwrap_err();
        assert!(format!("{error:#}").contains("lissten"), "{error:#}");
        let error = apply_str(command(), "test_config_listen = { a = 1 }").unwrap_err();
        assert!(
            format!("{error:#}").contains("test_config_listen"),
            "{error:#}"
        );
        assert!(apply_str(command(), "not toml =").is_err());
    }

    #[test]
    fn the_path_comes_from_the_flag_in_either_form() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            path_from(&args(&["hayabusa", "serve", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            path_from(&args(&["hayabusa", "--config=b.toml", "serve"])),
            Some(PathBuf::from("b.toml"))
        );
    }
}
