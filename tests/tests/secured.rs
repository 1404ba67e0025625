//! A secured cluster end to end: SASL/SCRAM-SHA-512 over TLS to the broker, HTTPS to the
//! registry, both certificates issued by a private CA, every setting given the way the README
//! documents it (`KAFKA_CONFIG_*`, `SCHEMA_REGISTRY_CA_FILE`).
//!
//! The broker is a tansu of the test's own with `--authentication` and a SCRAM user, behind a
//! TLS front (tansu 0.6.0 serves plaintext only; `retail_integration_tests::tls`); the
//! development registry reaches it with the same settings and is served over HTTPS the same
//! way. `retailctl` creates the topics and registers the schemas, the simulator sends orders,
//! the inventory worker answers them, and `retailctl tail` reads the answers back: every
//! client on the secured path. Then the failures an operator meets: a wrong password, a broker
//! certificate from another CA, a registry certificate the client was not told to trust. The
//! password must appear in no log.
//!
//! Runs where the suite starts its own local stack (`LOCAL_STACK=1`, `tests/run`), which puts
//! tansu on the PATH; against a cluster of yours, run the whole suite with its security settings
//! instead (README: "Against a real Apache Kafka and Schema Registry").

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use retail_integration_tests::process::{ANY_LOOPBACK_PORT, Process, binary, free_port};
use retail_integration_tests::tls::{TestPki, TlsFront};
use retail_integration_tests::unique_name;
use serde_json::Value as Json;

const USER: &str = "retail-inventory";
/// Distinctive, so that finding it in a log cannot be a coincidence.
const PASSWORD: &str = "pw-Zq8v3LmT0-secured-cluster";
const ORDERS: u64 = 20;

/// A tansu broker process, killed when dropped.
struct Tansu {
    child: Child,
    log: PathBuf,
}

impl Tansu {
    /// Starts tansu on `port`, advertising `advertised`, with its SQLite storage in `dir`.
    fn start(dir: &Path, port: u16, advertised: u16, authentication: bool) -> Self {
        let log = dir.join("broker.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("broker log");
        let mut command = Command::new("tansu");
        command
            .current_dir(dir)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{advertised}"),
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .stdin(Stdio::null());
        if authentication {
            command.arg("--authentication");
        }
        let child = command
            .spawn()
            .expect("tansu starts (deploy/local/stack install)");
        let tansu = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu not listening after 30 s:\n{}",
                std::fs::read_to_string(&tansu.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        tansu
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The secured cluster: broker and registry, each behind TLS.
struct SecuredCluster {
    dir: PathBuf,
    _broker: Tansu,
    _broker_tls: TlsFront,
    registry: Process,
    _registry_tls: TlsFront,
    bootstrap: String,
    registry_url: String,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
}

impl SecuredCluster {
    async fn start() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("secured"));
        std::fs::create_dir_all(&dir).expect("test folder");
        let pki = TestPki::new("retail");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).expect("CA file");
        let other_ca_file = dir.join("other-ca.pem");
        std::fs::write(&other_ca_file, TestPki::new("other").ca_pem).expect("other CA file");

        // The TLS front takes a port of its own (the one the broker advertises) while the
        // broker's port is still held, so the two cannot be the same. The broker's port comes
        // from below the ephemeral range, so no outgoing connection takes it once released.
        let reserved =
            std::net::TcpListener::bind(("127.0.0.1", free_port())).expect("a loopback port");
        let broker_port = reserved.local_addr().expect("bound address").port();
        let upstream = SocketAddr::from(([127, 0, 0, 1], broker_port));
        let broker_tls = TlsFront::start(0, upstream, &pki).await;
        let tls_port = broker_tls.address.port();
        drop(reserved);
        // SCRAM credentials are written through the broker; tansu 0.6.0 accepts that request
        // only while it does not require authentication. So: create the user, then restart
        // with --authentication on the same storage.
        {
            let _setup = Tansu::start(&dir, broker_port, broker_port, false);
            let output = Command::new("tansu")
                .args([
                    "user",
                    "create",
                    "--broker",
                    &format!("tcp://127.0.0.1:{broker_port}"),
                    "--mechanism",
                    "scram512",
                    USER,
                    PASSWORD,
                ])
                .output()
                .expect("tansu user create runs");
            assert!(
                output.status.success(),
                "tansu user create failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let broker = Tansu::start(&dir, broker_port, tls_port, true);
        let bootstrap = broker_tls.address.to_string();

        let registry_port = free_port();
        let mut env = kafka_security(&ca_file, PASSWORD);
        env.extend([
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.clone()),
            (
                "SCHEMA_REGISTRY_LISTEN",
                format!("127.0.0.1:{registry_port}"),
            ),
        ]);
        let registry = Process::start("dev-registry", "dev-registry", &[], &env, None, &dir);
        let deadline = Instant::now() + Duration::from_secs(60);
        let plain = format!("http://127.0.0.1:{registry_port}/subjects");
        while !reqwest::get(&plain)
            .await
            .is_ok_and(|response| response.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "the registry did not come up on the secured broker:\n{}",
                registry.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let registry_tls =
            TlsFront::start(0, SocketAddr::from(([127, 0, 0, 1], registry_port)), &pki).await;
        let registry_url = format!("https://127.0.0.1:{}", registry_tls.address.port());
        Self {
            dir,
            _broker: broker,
            _broker_tls: broker_tls,
            registry,
            _registry_tls: registry_tls,
            bootstrap,
            registry_url,
            ca_file,
            other_ca_file,
        }
    }

    /// Every setting a client of this cluster needs, as the README documents them.
    fn client_env(&self) -> Vec<(&'static str, String)> {
        let mut env = kafka_security(&self.ca_file, PASSWORD);
        env.extend([
            ("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap.clone()),
            ("SCHEMA_REGISTRY_URL", self.registry_url.clone()),
            (
                "SCHEMA_REGISTRY_CA_FILE",
                self.ca_file.display().to_string(),
            ),
        ]);
        env
    }
}

/// SASL/SCRAM over TLS, trusting `ca_file`.
fn kafka_security(ca_file: &Path, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_CONFIG_SECURITY_PROTOCOL", "SASL_SSL".to_owned()),
        ("KAFKA_CONFIG_SASL_MECHANISMS", "SCRAM-SHA-512".to_owned()),
        ("KAFKA_CONFIG_SASL_USERNAME", USER.to_owned()),
        ("KAFKA_CONFIG_SASL_PASSWORD", password.to_owned()),
        (
            "KAFKA_CONFIG_SSL_CA_LOCATION",
            ca_file.display().to_string(),
        ),
    ]
}

/// Runs `retailctl` with exactly `env` for the cluster (the test's own environment's cluster
/// settings removed).
fn retailctl(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(binary("retailctl"));
    command.args(args);
    for name in [
        "KAFKA_BOOTSTRAP_SERVERS",
        "SCHEMA_REGISTRY_URL",
        "SCHEMA_REGISTRY_CA_FILE",
        "SCHEMA_REGISTRY_BASIC_AUTH",
        "WORKER_TOPIC_PREFIX",
        "WORKER_KAFKA_CONFIG",
    ] {
        command.env_remove(name);
    }
    for (name, _) in std::env::vars() {
        if name.starts_with("KAFKA_CONFIG_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().map(|(name, value)| (*name, value)));
    command.output().expect("retailctl runs")
}

/// Asserts success; stdout.
fn succeeded(what: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts failure; stderr.
fn failed(what: &str, output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{what} should have failed; stdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// The command's own error message: its last line (librdkafka's log lines come before it).
fn last_line(stderr: &str) -> &str {
    stderr.trim_end().lines().last().unwrap_or_default()
}

fn with(
    env: &[(&'static str, String)],
    name: &'static str,
    value: String,
) -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = env
        .iter()
        .filter(|(key, _)| *key != name)
        .cloned()
        .collect();
    env.push((name, value));
    env
}

fn without(env: &[(&'static str, String)], name: &str) -> Vec<(&'static str, String)> {
    env.iter()
        .filter(|(key, _)| *key != name)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_and_tools_run_on_a_sasl_ssl_cluster_with_a_private_ca() {
    if std::env::var("LOCAL_STACK").as_deref() != Ok("1") {
        println!(
            "skipped: needs the local stack (LOCAL_STACK=1, tests/run); on your own cluster run \
             the whole suite with its security settings"
        );
        return;
    }
    let cluster = SecuredCluster::start().await;
    let prefix = format!("{}.", unique_name("secured"));
    let env = with(&cluster.client_env(), "WORKER_TOPIC_PREFIX", prefix.clone());

    // The operator's set-up, on the secured path.
    tokio::task::block_in_place(|| {
        succeeded(
            "retailctl topics create",
            &retailctl(&["topics", "create"], &env),
        );
        succeeded(
            "retailctl schemas register",
            &retailctl(&["schemas", "register"], &env),
        );
    });

    // A worker and the simulator, as deployed.
    let http = ANY_LOOPBACK_PORT.to_owned();
    let mut inventory = Process::start(
        "inventory",
        "inventory",
        &["--http-addr".to_owned(), http.clone()],
        &env,
        Some(http),
        &cluster.dir,
    );
    inventory.wait_ready(Duration::from_secs(120)).await;
    let mut simulator = Process::start(
        "simulator",
        "simulator",
        &[
            "--orders",
            &ORDERS.to_string(),
            "--rate",
            "20",
            "--linger",
            "1s",
        ]
        .map(ToString::to_string),
        &env,
        None,
        &cluster.dir,
    );
    let status = tokio::task::block_in_place(|| simulator.wait_for_exit(Duration::from_secs(120)));
    assert!(
        status.success(),
        "the simulator failed:\n{}",
        simulator.log_tail()
    );

    // Inventory answered every order: read back through the secured broker and registry.
    let deadline = Instant::now() + Duration::from_secs(120);
    let answered = loop {
        let output = tokio::task::block_in_place(|| {
            retailctl(
                &["tail", "inventory.reservations.v1", "--from-beginning"],
                &env,
            )
        });
        let lines: Vec<Json> = succeeded("retailctl tail", &output)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        for line in &lines {
            assert!(line.get("error").is_none(), "undecodable record: {line}");
        }
        let orders: BTreeSet<String> = lines
            .iter()
            .filter(|line| {
                matches!(
                    line["record_name"].as_str(),
                    Some("retail.inventory.StockReserved" | "retail.inventory.StockRejected")
                )
            })
            .filter_map(|line| line["value"]["order_id"].as_str().map(str::to_owned))
            .collect();
        if orders.len() as u64 >= ORDERS || Instant::now() > deadline {
            break orders;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        answered.len() as u64,
        ORDERS,
        "inventory answered {} of {ORDERS} orders; its log:\n{}",
        answered.len(),
        inventory.log_tail()
    );
    let status = inventory.terminate(Duration::from_secs(30));
    assert!(status.success(), "inventory exited with {status}");

    // What an operator sees when a setting is wrong.
    let wrong_password = with(
        &env,
        "KAFKA_CONFIG_SASL_PASSWORD",
        "not-the-password".to_owned(),
    );
    let message = failed(
        "topics create with a wrong password",
        &tokio::task::block_in_place(|| retailctl(&["topics", "create"], &wrong_password)),
    );
    println!("wrong password: {message}");
    let last = last_line(&message);
    assert!(last.contains(&cluster.bootstrap), "{last}");
    assert!(last.contains("SASL authentication"), "{last}");
    assert!(last.contains("sasl.password"), "{last}");

    let other_ca = with(
        &env,
        "KAFKA_CONFIG_SSL_CA_LOCATION",
        cluster.other_ca_file.display().to_string(),
    );
    let message = failed(
        "topics create trusting another CA",
        &tokio::task::block_in_place(|| retailctl(&["topics", "create"], &other_ca)),
    );
    println!("broker certificate from another CA: {message}");
    let last = last_line(&message);
    assert!(last.contains(&cluster.bootstrap), "{last}");
    assert!(last.contains("certificate verify failed"), "{last}");
    assert!(last.contains("ssl.ca.location"), "{last}");

    let registry_untrusted = without(&env, "SCHEMA_REGISTRY_CA_FILE");
    let message = failed(
        "schemas check without the registry's CA",
        &tokio::task::block_in_place(|| retailctl(&["schemas", "check"], &registry_untrusted)),
    );
    println!("registry certificate not trusted: {message}");
    let last = last_line(&message);
    assert!(last.contains(&cluster.registry_url), "{last}");
    assert!(last.contains("UnknownIssuer"), "{last}");
    assert!(last.contains("SCHEMA_REGISTRY_CA_FILE"), "{last}");

    // A worker with a wrong password: not ready, and its log says why.
    let http = ANY_LOOPBACK_PORT.to_owned();
    let mut refused = Process::start(
        "inventory",
        "inventory-wrong-password",
        &["--http-addr".to_owned(), http.clone()],
        &wrong_password,
        Some(http),
        &cluster.dir,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !refused
        .log()
        .contains("Kafka cluster unreachable at start-up")
    {
        assert!(
            Instant::now() < deadline,
            "no warning from the worker with a wrong password:\n{}",
            refused.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = refused.log();
    println!("worker with a wrong password:\n{}", refused.log_tail());
    assert!(log.contains("SASL authentication"), "{log}");
    assert!(log.contains("sasl.password"), "{log}");
    assert_eq!(
        refused.exited(),
        None,
        "it waits for the cluster, as for the registry"
    );
    let ready = refused.get("/readyz").await;
    assert!(
        ready.as_ref().is_some_and(
            |(status, body)| *status == 503 && body.contains("Kafka cluster unreachable")
        ),
        "{ready:?}"
    );
    let status = refused.terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "exited with {status} after SIGTERM while waiting"
    );

    // The password is in no log.
    for log in [
        inventory.log(),
        refused.log(),
        simulator.log(),
        cluster.registry.log(),
    ] {
        assert!(!log.contains(PASSWORD), "the password was logged:\n{log}");
    }
}
