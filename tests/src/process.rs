//! The project's binaries as processes, for the end-to-end tests: the five workers and the
//! simulator run exactly as they are deployed, each with its own HTTP listener and log file.
//!
//! The binaries are found next to the test executable (`target/<profile>/`). Cargo builds a
//! package's binaries for its own integration tests only, so `tests/run` builds them first
//! (`cargo build --workspace --bins`); a missing binary fails with that hint.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The path of the workspace binary `name`, built for the profile the tests run with.
pub fn binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first (tests/run does)",
        path.display()
    );
    path
}

/// The `--http-addr` to give a worker under test: a loopback port the worker picks itself.
/// [`Process`] reads the bound address from the worker's log, so no other process can take the
/// port between choosing and binding it, as it can with [`free_port`].
pub const ANY_LOOPBACK_PORT: &str = "127.0.0.1:0";

/// A loopback port that was free a moment ago, for a listener that must have a known port
/// before it starts (a broker that advertises it, say). Another process may bind it first: what
/// can listen on port 0 and report its address gets [`ANY_LOOPBACK_PORT`] instead.
///
/// The port is below the kernel's ephemeral range, so at least no outgoing connection is given
/// it meanwhile, as one can be a port from binding port 0.
pub fn free_port() -> u16 {
    use rand::Rng;
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let mut rng = rand::rng();
    (0..10_000)
        .map(|_| rng.random_range(low.saturating_sub(16384).max(1024)..low))
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .unwrap_or_else(|| panic!("no free loopback port below {low}"))
}

/// A running process of one of the project's binaries; killed (SIGKILL) if still running when
/// dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Names it in messages: `<binary>-<instance>`.
    pub name: String,
    /// Where it was told to serve `/metrics`, `/healthz` and `/readyz`, if it does; port 0
    /// means the address it bound, read from its log (see [`Process::http`]).
    http: Option<String>,
    /// The address read from its log, once it has logged it.
    bound_http: std::sync::OnceLock<String>,
    /// Where this process's part of the log starts: a restart under the same name appends to
    /// the log of the one before.
    log_start: usize,
    /// Its stdout and stderr.
    pub log_path: PathBuf,
}

impl Process {
    /// Starts `binary` with `args` and `env`, logging to `<log_dir>/<name>.log`.
    pub fn start(
        binary_name: &str,
        name: &str,
        args: &[String],
        env: &[(&str, String)],
        http: Option<String>,
        log_dir: &Path,
    ) -> Self {
        std::fs::create_dir_all(log_dir).expect("log folder");
        let log_path = log_dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let log_start = usize::try_from(log.metadata().expect("log file size").len())
            .expect("log size fits in memory");
        let mut command = Command::new(binary(binary_name));
        command
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("{name} does not start: {error}"));
        Self {
            child,
            name: name.to_owned(),
            http,
            bound_http: std::sync::OnceLock::new(),
            log_start,
            log_path,
        }
    }

    /// Where it serves HTTP: the address it was given or, for port 0, the one it logged when it
    /// bound (`serving ... on http://<addr>`); `None` before then or if it serves none.
    pub fn http(&self) -> Option<String> {
        let configured = self.http.as_ref()?;
        if !configured.ends_with(":0") {
            return Some(configured.clone());
        }
        if let Some(bound) = self.bound_http.get() {
            return Some(bound.clone());
        }
        let log = self.log();
        let bound = log
            .get(self.log_start..)?
            .lines()
            .filter(|line| line.contains("serving /metrics"))
            .find_map(|line| line.split_once(" on http://"))
            .and_then(|(_, rest)| rest.split(|c: char| c.is_whitespace() || c == '"').next())
            .filter(|addr| !addr.is_empty())?
            .to_owned();
        Some(self.bound_http.get_or_init(|| bound).clone())
    }

    /// GET `path` on its HTTP listener: status and body, or `None` if it does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let http = self.http()?;
        let response = reqwest::get(format!("http://{http}{path}")).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// The exit status if the process has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// Waits until `/readyz` answers 200, failing after `within` (or if the process exits).
    pub async fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!(
                    "{} exited with {status} before it was ready; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Some((200, _)) = self.get("/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after {within:?}; log:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for it to exit on its own, at most `within`.
    pub fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {within:?}; log:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit (at most `within`).
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "could not signal {}", self.name);
        self.wait_for_exit(within)
    }

    /// Kills it with SIGKILL, no warning, and reaps it.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// The last 60 lines of its log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
