//! The broker and registry a heavy test runs on: on the local broker (`LOCAL_STACK=1`, set by
//! `tests/run`) a fresh stack of its own, elsewhere the cluster the environment names.
//!
//! tansu 0.6.0 on SQLite slows down as its database grows: after the rest of the suite has
//! written to the shared stack, a test that keeps workers busy for a minute sees the broker stall
//! for longer than a session timeout (commits taking over 10 s, group memberships lost). Tests
//! whose subject is rebalancing, restarts and draining under load therefore get a broker whose
//! pauses come from what they do, not from what ran before them. On Apache Kafka they share the
//! cluster like every other test.

use std::path::{Path, PathBuf};

use crate::{bootstrap_servers, schema_registry_url};

/// The broker and registry of one test or run.
#[derive(Debug)]
pub struct Cluster {
    /// Its bootstrap servers.
    pub bootstrap: String,
    /// Its schema registry's URL.
    pub registry: String,
    /// The run's own local stack, stopped on drop; `None` on a shared cluster.
    stack_dir: Option<PathBuf>,
}

impl Cluster {
    fn stack_script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/stack")
    }

    /// The cluster the environment names (`KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_URL`).
    pub fn from_env() -> Self {
        Self {
            bootstrap: bootstrap_servers(),
            registry: schema_registry_url(),
            stack_dir: None,
        }
    }

    /// A fresh local stack with its state in `dir` when the suite runs on the local broker
    /// (`LOCAL_STACK=1`), else the environment's cluster.
    pub fn for_run(dir: &Path) -> Self {
        if std::env::var("LOCAL_STACK").as_deref() != Ok("1") {
            return Self::from_env();
        }
        let stack_dir = dir.join("stack");
        let output = std::process::Command::new(Self::stack_script())
            .arg("start")
            .env("STACK_DIR", &stack_dir)
            .env("STACK_FRESH", "1")
            .env_remove("KAFKA_PORT")
            .env_remove("REGISTRY_PORT")
            .output()
            .expect("deploy/local/stack start");
        assert!(
            output.status.success(),
            "starting the run's broker failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let exports = String::from_utf8_lossy(&output.stdout).into_owned();
        let value = |name: &str| {
            exports
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("{name} not in the stack's output: {exports}"))
                .to_owned()
        };
        Self {
            bootstrap: value("KAFKA_BOOTSTRAP_SERVERS"),
            registry: value("SCHEMA_REGISTRY_URL"),
            stack_dir: Some(stack_dir),
        }
    }
}

impl Cluster {
    /// Whether this is a stack of the run's own, whose broker and registry a test may stop and
    /// start.
    pub fn owns_stack(&self) -> bool {
        self.stack_dir.is_some()
    }

    /// Stops the run's own registry (`deploy/local/stack stop-registry`).
    ///
    /// # Panics
    /// On a shared cluster, or if the script fails.
    pub fn stop_registry(&self) {
        self.stack("stop-registry");
    }

    /// Starts the run's own registry again on its port and waits until it answers.
    ///
    /// # Panics
    /// On a shared cluster, or if the script fails.
    pub fn start_registry(&self) {
        self.stack("start-registry");
    }

    /// Restarts the run's own broker on its port and storage, and waits until it listens.
    ///
    /// # Panics
    /// On a shared cluster, or if the script fails.
    pub fn restart_broker(&self) {
        self.stack("restart-broker");
    }

    fn stack(&self, command: &str) {
        let stack_dir = self
            .stack_dir
            .as_ref()
            .expect("only a run's own stack can be stopped and started");
        let output = std::process::Command::new(Self::stack_script())
            .arg(command)
            .env("STACK_DIR", stack_dir)
            .output()
            .unwrap_or_else(|error| panic!("deploy/local/stack {command}: {error}"));
        assert!(
            output.status.success(),
            "deploy/local/stack {command} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(stack_dir) = &self.stack_dir {
            let _ = std::process::Command::new(Self::stack_script())
                .arg("stop")
                .env("STACK_DIR", stack_dir)
                .output();
        }
    }
}
