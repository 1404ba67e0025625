//! The broker and registry of one benchmark run, each in a process of its own so their CPU and
//! memory are measured apart from the arm's.
//!
//! - `tansu`: the local broker (`deploy/local/stack`, tansu 0.6.0 on SQLite) with the
//!   development registry; a fresh one per run, because tansu slows down as its database grows.
//! - `mock`: librdkafka's mock cluster, hosted by `retail-bench mock-broker` in its own process,
//!   with the development registry on it: in memory, no disk, one thread.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// Which broker the benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerKind {
    /// tansu 0.6.0 on SQLite, the project's local broker.
    Tansu,
    /// librdkafka's mock cluster in a process of its own.
    Mock,
}

impl BrokerKind {
    /// Its name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Tansu => "tansu 0.6.0 (SQLite)",
            Self::Mock => "librdkafka mock cluster",
        }
    }

    /// Whether it honours transactions (the exactly-once arms run only where it does).
    pub fn has_transactions(self) -> bool {
        matches!(self, Self::Mock)
    }
}

/// A running broker and registry.
#[derive(Debug)]
pub struct Stack {
    pub bootstrap: String,
    pub registry: String,
    /// The broker's process, for its CPU and memory figures.
    pub broker_pid: u32,
    children: Vec<Child>,
    /// The mock broker's control channel: `create <topic> <partitions>` lines, `ok` answers.
    mock_control: Option<(
        std::process::ChildStdin,
        BufReader<std::process::ChildStdout>,
    )>,
    stack_dir: Option<PathBuf>,
    repo: PathBuf,
}

impl Stack {
    /// Starts a fresh broker and registry with state under `dir`.
    pub async fn start(
        kind: BrokerKind,
        repo: &Path,
        bin_dir: &Path,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        match kind {
            BrokerKind::Tansu => Self::start_tansu(repo, dir),
            BrokerKind::Mock => Self::start_mock(repo, bin_dir, dir).await,
        }
    }

    fn stack_script(repo: &Path) -> PathBuf {
        repo.join("deploy/local/stack")
    }

    fn start_tansu(repo: &Path, dir: &Path) -> anyhow::Result<Self> {
        let stack_dir = dir.join("stack");
        let output = Command::new(Self::stack_script(repo))
            .arg("start")
            .env("STACK_DIR", &stack_dir)
            .env("STACK_FRESH", "1")
            .env_remove("KAFKA_PORT")
            .env_remove("REGISTRY_PORT")
            .stderr(Stdio::inherit())
            .output()
            .context("deploy/local/stack start")?;
        if !output.status.success() {
            bail!("deploy/local/stack start failed");
        }
        let exports = String::from_utf8_lossy(&output.stdout).into_owned();
        let value = |name: &str| -> anyhow::Result<String> {
            exports
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {name}=")))
                .map(str::to_owned)
                .with_context(|| format!("{name} not in the stack's output: {exports}"))
        };
        let broker_pid = std::fs::read_to_string(stack_dir.join("broker.pid"))
            .context("broker.pid")?
            .trim()
            .parse()
            .context("broker.pid")?;
        Ok(Self {
            bootstrap: value("KAFKA_BOOTSTRAP_SERVERS")?,
            registry: value("SCHEMA_REGISTRY_URL")?,
            broker_pid,
            children: Vec::new(),
            mock_control: None,
            stack_dir: Some(stack_dir),
            repo: repo.to_owned(),
        })
    }

    async fn start_mock(repo: &Path, bin_dir: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut broker = Command::new(bin_dir.join("retail-bench"))
            .arg("mock-broker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("broker.log"))?)
            .spawn()
            .context("starting retail-bench mock-broker")?;
        let mut line = String::new();
        let mut answers = BufReader::new(broker.stdout.take().context("broker stdout")?);
        answers
            .read_line(&mut line)
            .context("reading the mock broker's address")?;
        let control = (broker.stdin.take().context("broker stdin")?, answers);
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap=")
            .with_context(|| format!("mock broker said {line:?}"))?
            .to_owned();
        let broker_pid = broker.id();
        let mut children = vec![broker];
        let port = free_port()?;
        let registry = Command::new(bin_dir.join("dev-registry"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--bootstrap-servers", &bootstrap])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log"))?)
            .spawn()
            .context("starting dev-registry")?;
        children.push(registry);
        let url = format!("http://127.0.0.1:{port}");
        let stack = Self {
            bootstrap,
            registry: url.clone(),
            broker_pid,
            children,
            mock_control: Some(control),
            stack_dir: None,
            repo: repo.to_owned(),
        };
        wait_for_registry(&url, Duration::from_secs(60)).await?;
        Ok(stack)
    }

    /// Creates `topics` (name, partitions) with explicit retention, which Quix Streams needs
    /// to derive its changelog topics' configuration.
    pub async fn create_topics(&mut self, topics: &[(String, i32)]) -> anyhow::Result<()> {
        if let Some((commands, answers)) = &mut self.mock_control {
            // The mock cluster has no CreateTopics: its own API, in its process.
            use std::io::Write as _;
            for (name, partitions) in topics {
                writeln!(commands, "create {name} {partitions}")?;
                commands.flush()?;
                let mut answer = String::new();
                answers.read_line(&mut answer)?;
                if answer.trim() != "ok" {
                    bail!("mock broker creating {name}: {}", answer.trim());
                }
            }
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(name, partitions)| {
                NewTopic::new(name, *partitions, TopicReplication::Fixed(1))
                    .set("retention.ms", "604800000")
                    .set("retention.bytes", "-1")
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => bail!("creating {topic}: {code}"),
            }
        }
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The registry (last started) first: it is a client of the broker. Closing its stdin
        // would stop the mock broker too; SIGTERM does.
        for child in self.children.iter_mut().rev() {
            terminate(child, Duration::from_secs(10));
        }
        if let Some(stack_dir) = &self.stack_dir {
            let _ = Command::new(Self::stack_script(&self.repo))
                .arg("stop")
                .env("STACK_DIR", stack_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Sends SIGTERM and waits up to `grace`, then SIGKILL.
pub fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A loopback port free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_registry(url: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    loop {
        if client
            .get(format!("{url}/subjects"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the registry at {url} did not answer within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `retail-bench mock-broker`: hosts a mock cluster until stdin closes or a signal arrives,
/// printing `bootstrap=<servers>` first. The mock cluster has no CreateTopics; topics are
/// created by `create <topic> <partitions>` lines on stdin (answered `ok` or an error), and
/// others on first use with [`MOCK_PARTITIONS`]. The registry's `_schemas` is created here.
pub fn host_mock_broker() -> anyhow::Result<()> {
    let mock = rdkafka::mocking::MockCluster::new(1)?;
    mock.create_topic("_schemas", 1, 1)?;
    println!("bootstrap={}", mock.bootstrap_servers());
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["create", name, partitions] => match partitions.parse() {
                Ok(partitions) => match mock.create_topic(name, partitions, 1) {
                    Ok(()) => "ok".to_owned(),
                    Err(error) => error.to_string(),
                },
                Err(error) => format!("bad partition count: {error}"),
            },
            _ => format!("unknown command {:?}", line.trim()),
        };
        println!("{answer}");
        line.clear();
    }
    drop(mock);
    Ok(())
}

/// Partitions of the topics the mock cluster creates on first use (librdkafka's default):
/// the workers' own topics (dead letters, changelogs) must be co-partitioned with their
/// inputs, so on the mock cluster every topic has this many.
pub const MOCK_PARTITIONS: i32 = 4;
