//! The run's child processes (broker, registry, workers, simulator): started in process groups of
//! their own, logged to one file each, stopped with SIGTERM then SIGKILL, and never left behind.
//!
//! Three guards against orphans:
//! - each child leads its own process group, so a terminal's Ctrl-C reaches only this command,
//!   which then stops the children in order; signals go to the whole group;
//! - each child is started through `setpriv --pdeathsig KILL` (util-linux) when it is present,
//!   so the kernel kills it if this command dies, even by SIGKILL. The death signal follows the
//!   *thread* that started the child: children are spawned from the main thread only (the
//!   `block_on` future of `main`), which lives as long as the process;
//! - `kill_on_drop`, for a panic that unwinds past the supervisor.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::LaunchError;

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Names the process in the view, the log file and messages.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory, if not this command's.
    pub cwd: Option<PathBuf>,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`, if it does.
    pub http: Option<String>,
}

/// A running child.
#[derive(Debug)]
pub struct ChildProcess {
    /// As in the spec.
    pub name: String,
    /// Its process id (and process group id).
    pub pid: u32,
    /// Where it serves HTTP, if it does.
    pub http: Option<String>,
    /// Its stdout and stderr.
    pub log_path: PathBuf,
    /// The OS handle; reaped by `wait`.
    child: tokio::process::Child,
    /// Its exit, once seen.
    exit: Option<ExitStatus>,
}

/// Whether `setpriv --pdeathsig` can be used (util-linux; absent on macOS and some minimal
/// images, where a SIGKILLed launcher can leave children behind).
fn setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

impl ChildProcess {
    /// Starts `spec`, appending its output to `<log_dir>/<name>.log`.
    pub fn start(spec: &Spec, log_dir: &Path) -> Result<Self, LaunchError> {
        let log_path = log_dir.join(format!("{}.log", spec.name));
        let io_error = |source| LaunchError::Io {
            what: format!("opening {}", log_path.display()),
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_error)?;
        let log_err = log.try_clone().map_err(io_error)?;
        let mut command = match setpriv() {
            Some(setpriv) => {
                let mut command = tokio::process::Command::new(setpriv);
                command
                    .args(["--pdeathsig", "KILL", "--"])
                    .arg(&spec.program);
                command
            }
            None => tokio::process::Command::new(&spec.program),
        };
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let child = command.spawn().map_err(|source| LaunchError::Start {
            name: spec.name.clone(),
            reason: format!("{}: {source}", spec.program.display()),
            log: log_path.display().to_string(),
        })?;
        let pid = child.id().ok_or_else(|| LaunchError::Start {
            name: spec.name.clone(),
            reason: "exited at once".to_owned(),
            log: log_path.display().to_string(),
        })?;
        Ok(Self {
            name: spec.name.clone(),
            pid,
            http: spec.http.clone(),
            log_path,
            child,
            exit: None,
        })
    }

    /// Its exit status if it has exited (reaps it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status);
        }
        self.exit
    }

    /// Sends `signal` to its process group.
    fn signal(&self, signal: Signal) {
        let Ok(pid) = i32::try_from(self.pid) else {
            return;
        };
        // ESRCH: the group is gone already, which is what we want.
        let _ = killpg(Pid::from_raw(pid), signal);
    }

    /// SIGTERM, then SIGKILL if it has not exited after `deadline`; returns how it ended and
    /// whether it needed the SIGKILL.
    pub async fn stop(&mut self, deadline: Duration) -> (ExitStatus, bool) {
        if let Some(status) = self.exited() {
            return (status, false);
        }
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.exit = Some(status);
                (status, false)
            }
            _ => {
                self.signal(Signal::SIGKILL);
                let status = self.child.wait().await.unwrap_or_else(|_| killed_status());
                self.exit = Some(status);
                (status, true)
            }
        }
    }

    /// Waits for it to exit on its own, at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.exit = Some(status);
                Some(status)
            }
            _ => None,
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `/readyz` answers 200; fails if it exits first or after `within`.
    pub async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        within: Duration,
    ) -> Result<(), LaunchError> {
        let Some(http) = self.http.clone() else {
            return Ok(());
        };
        self.wait_until(within, async |_| {
            client
                .get(format!("http://{http}/readyz"))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
        })
        .await
    }

    /// Polls `ready` every 200 ms until it holds; fails if the process exits first or after
    /// `within`.
    pub async fn wait_until(
        &mut self,
        within: Duration,
        mut ready: impl AsyncFnMut(&Self) -> bool,
    ) -> Result<(), LaunchError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Err(LaunchError::Exited {
                    name: self.name.clone(),
                    status: status.to_string(),
                    log: self.log_path.display().to_string(),
                    tail: self.log_tail(15),
                });
            }
            if ready(self).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Start {
                    name: self.name.clone(),
                    reason: format!("not ready after {}", humantime::format_duration(within)),
                    log: self.log_path.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The status of a process killed by SIGKILL, for when `wait` itself failed.
fn killed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(9)
}

/// Whether a process with this id still exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) S ...`: the state follows the last ')'.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// A free loopback port a moment ago (the child binds it).
pub fn free_port() -> Result<u16, LaunchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|source| LaunchError::Io {
            what: "finding a free port".to_owned(),
            source,
        })
}
