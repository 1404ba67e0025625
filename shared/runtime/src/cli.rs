//! Parsing a binary's command line so that a rejected value names where it came from.
//!
//! Every flag also reads an environment variable, and on Kubernetes the variables are what
//! operators set. clap's message for a bad value names only the flag (`invalid value 'abc' for
//! '--batch-size <BATCH_SIZE>'`); when the value came from the variable, [`parse`] adds a line
//! saying so: `tip: the value comes from the environment variable WORKER_BATCH_SIZE`.

use std::ffi::{OsStr, OsString};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Command, Parser};

/// Parses the process's arguments and environment into `T`; on an error prints it (naming the
/// environment variable a rejected value came from) and exits as clap does (status 2; 0 for
/// `--help` and `--version`).
pub fn parse<T: Parser>() -> T {
    let args: Vec<OsString> = std::env::args_os().collect();
    T::try_parse_from(&args).unwrap_or_else(|error| {
        with_env_source(error, &T::command(), &args, |name| std::env::var_os(name)).exit()
    })
}

/// `error` with a tip naming the environment variable its rejected value came from: the
/// argument's variable is set (`var`) and its flag is not in `args`. Other errors unchanged.
pub fn with_env_source(
    mut error: clap::Error,
    command: &Command,
    args: &[OsString],
    var: impl Fn(&OsStr) -> Option<OsString>,
) -> clap::Error {
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8
    ) {
        return error;
    }
    // "--batch-size <BATCH_SIZE>"
    let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let Some(flag) = invalid.split([' ', '=']).next().map(str::to_owned) else {
        return error;
    };
    let Some(long) = flag.strip_prefix("--") else {
        return error;
    };
    let given = args.iter().skip(1).any(|arg| {
        arg.to_str()
            .is_some_and(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
    });
    let Some(env) = env_of(command, long) else {
        return error;
    };
    if given || var(env).is_none() {
        return error;
    }
    let tip = format!(
        "the value comes from the environment variable {}",
        env.to_string_lossy()
    );
    let mut tips = match error.get(ContextKind::Suggested) {
        Some(ContextValue::StyledStrs(tips)) => tips.clone(),
        _ => Vec::new(),
    };
    tips.push(tip.into());
    error.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
    error
}

/// The environment variable of the flag `--<long>`, in `command` or its subcommands.
fn env_of<'a>(command: &'a Command, long: &str) -> Option<&'a OsStr> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(clap::Arg::get_env)
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|subcommand| env_of(subcommand, long))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuntimeConfig;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        runtime: RuntimeConfig,
    }

    /// clap's error for `--batch-size abc`, given to [`with_env_source`] as if the command
    /// line had been `args_seen` and the environment `env` (clap reads the real environment,
    /// which a test cannot set).
    fn rendered(args_seen: &[&str], env: &[(&str, &str)]) -> String {
        let error = Cli::try_parse_from(["worker", "--batch-size", "abc"]).expect_err("bad value");
        let command = <Cli as clap::CommandFactory>::command();
        let args: Vec<OsString> = args_seen.iter().map(OsString::from).collect();
        with_env_source(error, &command, &args, |name| {
            env.iter()
                .find(|(key, _)| OsStr::new(key) == name)
                .map(|(_, value)| OsString::from(value))
        })
        .to_string()
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable() {
        let message = rendered(&["worker"], &[("WORKER_BATCH_SIZE", "abc")]);
        assert!(message.contains("'--batch-size <BATCH_SIZE>'"), "{message}");
        assert!(
            message
                .contains("tip: the value comes from the environment variable WORKER_BATCH_SIZE"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_value_on_the_command_line_gets_no_tip() {
        for args in [
            &["worker", "--batch-size", "abc"][..],
            &["worker", "--batch-size=abc"][..],
        ] {
            let message = rendered(args, &[("WORKER_BATCH_SIZE", "abc")]);
            assert!(!message.contains("WORKER_BATCH_SIZE"), "{message}");
        }
        let message = rendered(&["worker"], &[]);
        assert!(!message.contains("tip:"), "{message}");
    }
}
