//! Builds the binaries the run starts (the five workers, the simulator, the development
//! registry) with cargo, showing progress, and installs the local broker when it is missing.
//!
//! Cargo's JSON messages (`--message-format=json-render-diagnostics`) name each compiled unit
//! (`compiler-artifact`) and each binary's path (`executable`): the progress bar counts the
//! units, against the count the previous build of the same profile saw (remembered in
//! `target/local-run/units-<profile>`); the first build shows a spinner with the count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::error::LaunchError;

/// The binaries of the run, by name, and the packages that build them.
pub const BINARIES: [(&str, &str); 7] = [
    ("inventory", "inventory"),
    ("fraud", "fraud"),
    ("fulfilment", "fulfilment"),
    ("shipping", "shipping"),
    ("notification", "notification"),
    ("simulator", "retail-simulator"),
    ("dev-registry", "retail-dev-registry"),
];

/// The tansu version `deploy/local/stack` installs.
const TANSU_VERSION: &str = "0.6.0";

/// Where each binary is.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Binary name -> path.
    paths: BTreeMap<String, PathBuf>,
}

impl Binaries {
    /// The path of `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.paths
            .get(name)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(name))
    }

    /// Binaries already built in `dir`; fails naming the first that is missing.
    pub fn in_dir(dir: &Path) -> Result<Self, LaunchError> {
        let mut paths = BTreeMap::new();
        for (name, _) in BINARIES {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(LaunchError::Build {
                    reason: format!(
                        "{} is missing (build it, or drop --bin-dir)",
                        path.display()
                    ),
                    log: dir.display().to_string(),
                });
            }
            paths.insert(name.to_owned(), path);
        }
        Ok(Self { paths })
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// A spinner or bar in the house style.
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner:.cyan} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let message = message.into();
    // Off a terminal the bar draws nothing: say what is happening on a plain line instead.
    if bar.is_hidden() {
        println!("{message} ...");
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Builds the binaries with `profile` in `workspace`, logging cargo's output to `log`.
pub async fn build(workspace: &Path, profile: &str, log: &Path) -> Result<Binaries, LaunchError> {
    let units_file = workspace
        .join("target/local-run")
        .join(format!("units-{profile}"));
    let expected: Option<u64> = std::fs::read_to_string(&units_file)
        .ok()
        .and_then(|text| text.trim().parse().ok());
    if !console::Term::stderr().is_term() {
        println!(
            "building the binaries ({profile}); cargo's output: {}",
            log.display()
        );
    }
    let bar = match expected {
        Some(total) => {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.cyan} building ({prefix}) [{bar:30.cyan/blue}] {pos}/{len} {msg} [{elapsed}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message("building");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }
    };
    bar.set_prefix(profile.to_owned());

    let mut command = tokio::process::Command::new(cargo());
    command
        .current_dir(workspace)
        .args([
            "build",
            "--profile",
            profile,
            "--message-format=json-render-diagnostics",
            "--bins",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(open_log(log)?))
        .kill_on_drop(true);
    for (_, package) in BINARIES {
        command.args(["-p", package]);
    }
    let mut child = command.spawn().map_err(|source| LaunchError::Io {
        what: "starting cargo".to_owned(),
        source,
    })?;
    let stdout = child.stdout.take().ok_or_else(|| LaunchError::Build {
        reason: "no output from cargo".to_owned(),
        log: log.display().to_string(),
    })?;
    let mut lines = BufReader::new(stdout).lines();
    let mut units = 0_u64;
    let mut paths = BTreeMap::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        units += 1;
        let crate_name = message["target"]["name"].as_str().unwrap_or_default();
        bar.set_position(units);
        if expected.is_none() {
            bar.set_message(format!(
                "building: {units} crates compiled, last {crate_name}"
            ));
        } else {
            bar.set_message(crate_name.to_owned());
        }
        if let Some(executable) = message["executable"].as_str()
            && BINARIES.iter().any(|(name, _)| *name == crate_name)
        {
            paths.insert(crate_name.to_owned(), PathBuf::from(executable));
        }
    }
    let status = child.wait().await.map_err(|source| LaunchError::Io {
        what: "waiting for cargo".to_owned(),
        source,
    })?;
    if !status.success() {
        bar.abandon_with_message("build failed");
        return Err(LaunchError::Build {
            reason: format!("cargo build exited with {status}"),
            log: log.display().to_string(),
        });
    }
    if let Some(missing) = BINARIES.iter().find(|(name, _)| !paths.contains_key(*name)) {
        return Err(LaunchError::Build {
            reason: format!("cargo reported no executable for {}", missing.0),
            log: log.display().to_string(),
        });
    }
    if let Some(parent) = units_file.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&units_file, units.to_string());
    bar.finish_and_clear();
    Ok(Binaries { paths })
}

fn open_log(log: &Path) -> Result<std::fs::File, LaunchError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| LaunchError::Io {
            what: format!("opening {}", log.display()),
            source,
        })
}

/// The `tansu` binary, installed by `deploy/local/stack install-broker` if it is missing or of
/// another version (once per machine: `cargo install`, minutes; its progress is shown).
pub async fn ensure_tansu(workspace: &Path, log: &Path) -> Result<PathBuf, LaunchError> {
    if let Some(path) = installed_tansu().await {
        return Ok(path);
    }
    let bar = spinner(format!(
        "installing the local broker (tansu {TANSU_VERSION}, once per machine, ~12 minutes on 2 cores)"
    ));
    let mut child = tokio::process::Command::new(workspace.join("deploy/local/stack"))
        .arg("install-broker")
        .stdin(Stdio::null())
        .stdout(Stdio::from(open_log(log)?))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| LaunchError::Io {
            what: "starting deploy/local/stack install-broker".to_owned(),
            source,
        })?;
    let install_failed = |reason: String| LaunchError::Install {
        what: "the local broker (tansu)",
        reason,
        log: log.display().to_string(),
    };
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| install_failed("no output".to_owned()))?;
    let mut lines = BufReader::new(stderr).lines();
    let mut compiled = 0;
    let mut copy = open_log(log)?;
    while let Ok(Some(line)) = lines.next_line().await {
        use std::io::Write as _;
        let _ = writeln!(copy, "{line}");
        if let Some(rest) = line.trim_start().strip_prefix("Compiling ") {
            compiled += 1;
            bar.set_message(format!(
                "installing the local broker (tansu {TANSU_VERSION}, once per machine): {compiled} crates compiled, last {rest}"
            ));
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|error| install_failed(error.to_string()))?;
    if !status.success() {
        bar.abandon_with_message("installing the local broker failed");
        return Err(install_failed(format!("exited with {status}")));
    }
    bar.finish_and_clear();
    installed_tansu()
        .await
        .ok_or_else(|| install_failed("tansu is not on PATH after the install".to_owned()))
}

/// `tansu` on the PATH (or in ~/.cargo/bin) at the expected version.
async fn installed_tansu() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("tansu")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    for candidate in candidates {
        let Ok(output) = tokio::process::Command::new(&candidate)
            .arg("--version")
            .output()
            .await
        else {
            continue;
        };
        if String::from_utf8_lossy(&output.stdout).contains(&format!("tansu {TANSU_VERSION}")) {
            return Some(candidate);
        }
    }
    None
}
