//! Offline checks of the deployment files, for a machine without a Docker engine or a cluster:
//! `docker-compose.yml`, `deploy/Dockerfile`, `deploy/prometheus/`, `deploy/grafana/` and the
//! kustomizations of `deploy/kubernetes/`.
//!
//! What is checked, and against what:
//! - the compose file: `docker compose config` (the real CLI, no engine needed) parses and
//!   resolves it; every variable a service of our image sets is one its binary accepts (read from
//!   the built binary's `--help`), the runtime and simulator values parse and validate with the
//!   binaries' own clap parsers, host ports are unique, bind-mounted paths exist, the workers
//!   listen on 0.0.0.0 on the port they publish, Prometheus scrapes exactly the workers, Grafana
//!   mounts what its provisioning points at;
//! - `promtool check config` on prometheus.yml with the repository's rule files;
//! - the Dockerfile: hadolint, and the binaries it builds and copies into the runtime stage are
//!   the workspace's deployable binaries (`cargo metadata`), built with this toolchain;
//! - the Kubernetes manifests of the base and every overlay, rendered by kustomize: every object
//!   against the Kubernetes schemas and the KEDA / prometheus-operator CRD schemas (strict), and
//!   their consistency with the workers: flags, probe ports, grace period above the drain
//!   deadline, secrets by reference, one Deployment + PDB + Service + ServiceMonitor +
//!   ScaledObject per worker, and KEDA triggers on the consumer groups the workers really join
//!   (seen by starting every worker against the test broker).
//!
//! The tools come from `deploy/tools/install` (tests/run calls it): a virtualenv in
//! `$RETAIL_DEPLOY_TOOLS` (default `~/.cache/retail-saga/deploy-tools`) and Debian's promtool.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use retail_integration_tests::process::{ANY_LOOPBACK_PORT, Process, binary};
use retail_integration_tests::{bootstrap_servers, schema_registry_url, unique_name};
use retail_runtime::RuntimeConfig;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

/// The worker binaries; each is one compose service and one Kubernetes Deployment.
const WORKERS: [&str; 5] = [
    "inventory",
    "fraud",
    "fulfilment",
    "shipping",
    "notification",
];

/// Workspace binaries the image leaves out, with the reason.
const NOT_DEPLOYED: [(&str, &str); 5] = [
    (
        "dev-registry",
        "the development schema registry; deployments use Confluent Schema Registry",
    ),
    ("counting-worker", "the runtime tests' worker"),
    ("retail-bench", "the benchmark suite (bench/run)"),
    ("replay", "the benchmark suite's offline replay harness"),
    (
        "retail-local",
        "the local run command (deploy/local/run): starts the whole saga on a developer's machine",
    ),
];

/// The image every service of ours runs (docker-compose.yml; kustomize `images` in Kubernetes).
const COMPOSE_IMAGE: &str = "retail-saga:local";

/// Parameters of KEDA's Kafka scaler (keda.sh/docs/scalers/apache-kafka); a trigger's
/// metadata is a free string map in the CRD, so a misspelt key would pass the schema.
const KEDA_KAFKA_PARAMETERS: [&str; 16] = [
    "bootstrapServers",
    "bootstrapServersFromEnv",
    "consumerGroup",
    "consumerGroupFromEnv",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "partitionLimitation",
    "scaleToZeroOnInvalidOffset",
    "sasl",
    "tls",
    "version",
];

/// Kubernetes versions the manifests are validated against: the oldest we support and the
/// newest kubernetes-validate knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.29", "1.37"];

// --- helpers ---------------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// The virtualenv of deploy/tools/install.
fn tools_dir() -> PathBuf {
    match std::env::var_os("RETAIL_DEPLOY_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/retail-saga/deploy-tools")
        }
    }
}

/// A tool of the virtualenv, or a failure that says how to install it.
fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run deploy/tools/install (tests/run does), or set RETAIL_DEPLOY_TOOLS to \
         where it installed the tools",
        path.display()
    );
    path
}

/// Runs `command`; its stdout, or a failure with everything it said.
fn output_of(command: &mut Command) -> String {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {shown}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The environment variables a `--help` text lists (`[env: NAME=value]` or `[env: NAME]`).
fn env_vars_in_help(help: &str) -> BTreeSet<String> {
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(['=', ']'])?;
            Some(rest[..end].trim().to_owned())
        })
        .collect()
}

/// Variables a binary reads from the environment only (secrets, which have no flag so they
/// never appear on a command line); its help names each as "set NAME".
fn env_only_vars_in_help(help: &str) -> BTreeSet<String> {
    help.split("set ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            (name.contains('_') && name.len() > 3).then_some(name)
        })
        .collect()
}

/// The variables binary `name` accepts, from its `--help` (and its subcommands' with `args`).
fn accepted_env(name: &str, subcommands: &[&[&str]]) -> BTreeSet<String> {
    let path = binary(name);
    let mut vars = BTreeSet::new();
    let invocations: Vec<&[&str]> = if subcommands.is_empty() {
        vec![&[]]
    } else {
        subcommands.to_vec()
    };
    for args in invocations {
        let help = output_of(Command::new(&path).args(args).arg("--help"));
        vars.extend(env_vars_in_help(&help));
        vars.extend(env_only_vars_in_help(&help));
    }
    assert!(
        vars.contains("KAFKA_BOOTSTRAP_SERVERS"),
        "{name} --help lists no KAFKA_BOOTSTRAP_SERVERS: is the help format still `[env: NAME=...]`?"
    );
    vars
}

/// Variables set but not accepted by the binary; `KAFKA_CONFIG_<NAME>` are librdkafka
/// pass-through properties every binary takes.
fn unknown_vars<'a>(
    set: impl IntoIterator<Item = &'a String>,
    accepted: &BTreeSet<String>,
) -> Vec<String> {
    set.into_iter()
        .filter(|name| !accepted.contains(*name) && !name.starts_with("KAFKA_CONFIG_"))
        .cloned()
        .collect()
}

/// Turns variables into the long flags of `command` that read them, so a clap parser can check
/// the values without touching the process environment. Variables `command` does not read are
/// left out (their names are checked against `--help`).
fn env_as_flags(command: &clap::Command, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut args = vec!["check".to_owned()];
    for arg in command.get_arguments() {
        let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        if let Some(value) = var.to_str().and_then(|var| env.get(var)) {
            args.push(format!("--{long}={value}"));
        }
    }
    args
}

/// The runtime's configuration from these variables, parsed and validated as a worker does.
fn runtime_config(env: &BTreeMap<String, String>, context: &str) -> RuntimeConfig {
    #[derive(clap::Parser)]
    struct Worker {
        #[command(flatten)]
        runtime: RuntimeConfig,
    }
    let command = Worker::command();
    let matches = command
        .clone()
        .try_get_matches_from(env_as_flags(&command, env))
        .unwrap_or_else(|error| panic!("{context}: the runtime rejects its settings: {error}"));
    let config = Worker::from_arg_matches(&matches)
        .unwrap_or_else(|error| panic!("{context}: {error}"))
        .runtime;
    if let Err(error) = config.validate() {
        panic!("{context}: invalid runtime settings: {error}");
    }
    config
}

fn listens_on_all_interfaces(config: &RuntimeConfig, context: &str) -> u16 {
    assert!(
        config.http_addr.ip().is_unspecified(),
        "{context}: WORKER_HTTP_ADDR {} is not reachable from outside the container: bind 0.0.0.0",
        config.http_addr
    );
    config.http_addr.port()
}

// --- docker-compose.yml ----------------------------------------------------------------------

/// `docker compose config` of the repository's compose file: anchors, merges and variables
/// resolved, paths absolute, as compose will run it.
fn compose() -> &'static Json {
    static CONFIG: OnceLock<Json> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let repo = repo();
        let json = output_of(
            Command::new(tool("docker-compose"))
                .arg("--file")
                .arg(repo.join("docker-compose.yml"))
                .arg("--project-directory")
                .arg(&repo)
                .args(["config", "--format", "json"])
                .env_remove("COMPOSE_FILE")
                .env_remove("COMPOSE_PROFILES"),
        );
        serde_json::from_str(&json).expect("docker compose config prints JSON")
    })
}

fn services() -> &'static serde_json::Map<String, Json> {
    compose()["services"]
        .as_object()
        .expect("compose has services")
}

fn service(name: &str) -> &'static Json {
    services()
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

fn service_env(service: &Json) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|env| {
            env.iter()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(value: &Json) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The binaries a service of our image runs: `command[0]`, or for a `sh -c` entrypoint every
/// command of the script, with its first two words (binary and subcommand).
fn service_programs(service: &Json) -> Vec<Vec<String>> {
    let command = strings(&service["command"]);
    let entrypoint = strings(&service["entrypoint"]);
    if entrypoint
        .first()
        .is_some_and(|shell| shell.ends_with("sh"))
    {
        let script = command.join(" ");
        return script
            .split("&&")
            .map(|part| part.split_whitespace().map(str::to_owned).collect())
            .collect();
    }
    vec![command]
}

fn our_services() -> Vec<(&'static String, &'static Json)> {
    services()
        .iter()
        .filter(|(_, service)| service["image"].as_str() == Some(COMPOSE_IMAGE))
        .collect()
}

/// Container port -> host port of a service's published ports.
fn published_ports(service: &Json) -> Vec<(u64, String)> {
    service["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|port| {
                    let target = port["target"].as_u64().expect("ports have a target");
                    let published = match &port["published"] {
                        Json::String(text) => text.clone(),
                        Json::Number(number) => number.to_string(),
                        _ => String::new(),
                    };
                    (target, published)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Bind mounts of a service: repository path -> container path.
fn bind_mounts(service: &Json) -> Vec<(PathBuf, String)> {
    service["volumes"]
        .as_array()
        .map(|volumes| {
            volumes
                .iter()
                .filter(|volume| volume["type"] == "bind")
                .map(|volume| {
                    (
                        PathBuf::from(volume["source"].as_str().expect("bind source")),
                        volume["target"].as_str().expect("bind target").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where a repository path is mounted in a service.
fn mount_target(service: &Json, repo_path: &str) -> String {
    let source = repo().join(repo_path);
    bind_mounts(service)
        .into_iter()
        .find(|(mounted, _)| *mounted == source)
        .map(|(_, target)| target)
        .unwrap_or_else(|| panic!("{repo_path} is not mounted in {service}"))
}

#[test]
fn compose_runs_each_worker_the_simulator_and_init_from_our_image() {
    let shipped = dockerfile().shipped;
    let mut workers = BTreeSet::new();
    for (name, service) in our_services() {
        let build = &service["build"];
        assert_eq!(
            Path::new(build["context"].as_str().expect("build context")),
            repo(),
            "{name}: builds from the repository root"
        );
        assert_eq!(
            build["dockerfile"], "deploy/Dockerfile",
            "{name}: built by deploy/Dockerfile"
        );
        for program in service_programs(service) {
            let binary = program.first().expect("a command");
            assert!(
                shipped.contains(binary),
                "{name} runs {binary}, which deploy/Dockerfile does not ship ({shipped:?})"
            );
            if WORKERS.contains(&binary.as_str()) {
                assert_eq!(name, binary, "worker services are named after their binary");
                workers.insert(binary.clone());
            }
        }
    }
    assert_eq!(
        workers,
        WORKERS.iter().map(|w| (*w).to_owned()).collect(),
        "every worker runs once"
    );
    assert_eq!(
        service_programs(service("simulator")),
        vec![vec!["simulator".to_owned()]]
    );

    let init = service_programs(service("init"));
    for expected in [
        ["retailctl", "topics", "create"],
        ["retailctl", "schemas", "register"],
    ] {
        assert!(
            init.iter()
                .any(|program| program.iter().map(String::as_str).take(3).eq(expected)),
            "init runs {}: {init:?}",
            expected.join(" ")
        );
    }
    for name in WORKERS.iter().chain(&["simulator"]) {
        assert_eq!(
            service(name)["depends_on"]["init"]["condition"],
            "service_completed_successfully",
            "{name} starts after init created the topics and registered the schemas"
        );
    }
}

#[test]
fn compose_settings_are_variables_the_binaries_accept() {
    for (name, service) in our_services() {
        let env = service_env(service);
        for program in service_programs(service) {
            let binary_name = program.first().expect("a command").as_str();
            let accepted = if binary_name == "retailctl" {
                accepted_env(
                    "retailctl",
                    &[&["topics", "create"], &["schemas", "register"]],
                )
            } else {
                accepted_env(binary_name, &[])
            };
            let unknown = unknown_vars(env.keys(), &accepted);
            assert!(
                unknown.is_empty(),
                "compose service {name} sets {unknown:?}, which {binary_name} does not read \
                 (it reads {accepted:?})"
            );
        }
        for required in ["KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL"] {
            let value = env.get(required).map(String::as_str).unwrap_or_default();
            let host = value
                .trim_start_matches("http://")
                .split([':', ','])
                .next()
                .unwrap_or_default();
            assert!(
                services().contains_key(host),
                "compose service {name}: {required}={value:?} must name a compose service"
            );
        }
    }

    for worker in WORKERS {
        let env = service_env(service(worker));
        let config = runtime_config(&env, &format!("compose service {worker}"));
        listens_on_all_interfaces(&config, &format!("compose service {worker}"));
        assert!(
            !env.contains_key("WORKER_GROUP_ID"),
            "{worker}: the KEDA triggers and dashboards expect the default group ids"
        );
        let grace = service(worker)["stop_grace_period"]
            .as_str()
            .expect("workers have a stop_grace_period");
        let grace = parse_seconds(grace);
        assert!(
            grace > config.drain_deadline,
            "{worker}: stop_grace_period {grace:?} must exceed the drain deadline {:?}",
            config.drain_deadline
        );
    }

    let simulator_env = service_env(service("simulator"));
    let command = retail_simulator::Config::command();
    let matches = command
        .clone()
        .try_get_matches_from(env_as_flags(&command, &simulator_env))
        .unwrap_or_else(|error| panic!("compose service simulator: {error}"));
    let simulator = retail_simulator::Config::from_arg_matches(&matches).expect("simulator config");
    if let Err(error) = simulator.validate() {
        panic!("compose service simulator: {error}");
    }
}

/// `30s`, `1m30s`, or compose's normalised `30s` / plain seconds.
fn parse_seconds(text: &str) -> Duration {
    let mut total = 0;
    let mut number = String::new();
    for character in text.chars() {
        match character {
            '0'..='9' => number.push(character),
            'h' | 'm' | 's' => {
                let value: u64 = number.parse().expect("a number before the unit");
                total += value
                    * match character {
                        'h' => 3600,
                        'm' => 60,
                        _ => 1,
                    };
                number.clear();
            }
            other => panic!("unexpected {other:?} in duration {text:?}"),
        }
    }
    if !number.is_empty() {
        total += number.parse::<u64>().expect("seconds");
    }
    Duration::from_secs(total)
}

#[test]
fn compose_ports_and_mounts_are_consistent() {
    let mut host_ports = BTreeMap::new();
    for (name, service) in services() {
        for (_, published) in published_ports(service) {
            if let Some(other) = host_ports.insert(published.clone(), name.clone()) {
                panic!("host port {published} is published by both {other} and {name}");
            }
        }
        for (source, target) in bind_mounts(service) {
            assert!(
                source.starts_with(repo()) && source.exists(),
                "{name} mounts {} at {target}, which is not in the repository",
                source.display()
            );
        }
    }
    for worker in WORKERS {
        let env = service_env(service(worker));
        let port = listens_on_all_interfaces(&runtime_config(&env, worker), worker);
        let published = published_ports(service(worker));
        assert!(
            published
                .iter()
                .any(|(target, _)| *target == u64::from(port)),
            "{worker} listens on {port} but publishes {published:?}"
        );
    }

    let notification = service("notification");
    let dir = service_env(notification)
        .get("NOTIFICATION_DIR")
        .cloned()
        .expect("the notification service sets NOTIFICATION_DIR");
    let volumes = notification["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|volume| volume["target"] == dir.as_str() && volume["type"] == "volume"),
        "the notification files ({dir}) go to a named volume: {volumes:?}"
    );
    assert!(
        dockerfile().text.contains(&dir),
        "the image creates {dir} for the non-root user, so the volume starts with its owner"
    );
}

// --- Prometheus and Grafana ------------------------------------------------------------------

fn read_yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()))
}

fn yaml_str<'a>(value: &'a Yaml, context: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{context}: expected a string, found {value:?}"))
}

fn yaml_seq<'a>(value: &'a Yaml, context: &str) -> &'a [Yaml] {
    value
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{context}: expected a list, found {value:?}"))
}

/// A pinned image: a tag that is neither missing nor `latest`.
fn assert_pinned(service_name: &str) {
    let image = service(service_name)["image"].as_str().expect("image");
    let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
    assert!(
        !tag.is_empty() && tag != "latest" && !tag.contains('/'),
        "{service_name}: pin the image version, not {image}"
    );
}

#[test]
fn prometheus_scrapes_the_compose_workers_and_loads_the_rules() {
    let prometheus = service("prometheus");
    assert_pinned("prometheus");
    let config_arg = strings(&prometheus["command"])
        .into_iter()
        .find_map(|arg| arg.strip_prefix("--config.file=").map(str::to_owned))
        .expect("prometheus is started with --config.file");
    assert_eq!(
        mount_target(prometheus, "deploy/prometheus/prometheus.yml"),
        config_arg
    );
    let rules_dir = mount_target(prometheus, "deploy/prometheus/rules");

    let config = read_yaml(&repo().join("deploy/prometheus/prometheus.yml"));
    let rule_files = yaml_seq(&config["rule_files"], "rule_files");
    assert!(!rule_files.is_empty(), "prometheus.yml loads no rules");
    for pattern in rule_files {
        let pattern = yaml_str(pattern, "rule_files");
        assert!(
            pattern.starts_with(&format!("{rules_dir}/")),
            "rule file pattern {pattern} is outside the mounted rules dir {rules_dir}"
        );
    }

    let mut scraped = BTreeSet::new();
    for job in yaml_seq(&config["scrape_configs"], "scrape_configs") {
        if job["job_name"] == "prometheus" {
            continue;
        }
        for static_config in yaml_seq(&job["static_configs"], "static_configs") {
            for target in yaml_seq(&static_config["targets"], "targets") {
                scraped.insert(yaml_str(target, "target").to_owned());
            }
        }
    }
    let expected: BTreeSet<String> = WORKERS
        .iter()
        .map(|worker| {
            let env = service_env(service(worker));
            let port = runtime_config(&env, worker).http_addr.port();
            format!("{worker}:{port}")
        })
        .collect();
    assert_eq!(scraped, expected, "Prometheus scrapes exactly the workers");
}

#[test]
fn grafana_provisioning_points_at_what_compose_mounts() {
    let grafana = service("grafana");
    assert_pinned("grafana");
    assert_eq!(
        mount_target(grafana, "deploy/grafana/provisioning"),
        "/etc/grafana/provisioning"
    );
    let dashboards_dir = mount_target(grafana, "deploy/grafana/dashboards");

    let dashboards = read_yaml(&repo().join("deploy/grafana/provisioning/dashboards/retail.yml"));
    let providers = yaml_seq(&dashboards["providers"], "providers");
    assert!(
        providers.iter().any(|provider| provider["type"] == "file"
            && provider["options"]["path"].as_str() == Some(dashboards_dir.as_str())),
        "a file provider reads {dashboards_dir}: {providers:?}"
    );

    let datasources =
        read_yaml(&repo().join("deploy/grafana/provisioning/datasources/prometheus.yml"));
    let datasources = yaml_seq(&datasources["datasources"], "datasources");
    let prometheus = datasources
        .iter()
        .find(|source| source["uid"] == "prometheus")
        .expect("a data source with uid `prometheus`, which the dashboards use");
    assert_eq!(prometheus["type"], "prometheus");
    let port = strings(&service("prometheus")["command"])
        .iter()
        .find_map(|arg| arg.strip_prefix("--web.listen-address=").map(str::to_owned))
        .and_then(|address| address.rsplit(':').next().map(str::to_owned))
        .unwrap_or_else(|| "9090".to_owned());
    assert_eq!(
        yaml_str(&prometheus["url"], "url"),
        format!("http://prometheus:{port}")
    );
}

#[test]
fn promtool_accepts_the_prometheus_config_and_rules() {
    let promtool = which("promtool").unwrap_or_else(|| {
        panic!("promtool is missing: run deploy/tools/install (Debian package `prometheus`)")
    });
    // The config names the rules by their path in the container; check the repository's.
    let repo = repo();
    let config = std::fs::read_to_string(repo.join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let rules_dir = mount_target(service("prometheus"), "deploy/prometheus/rules");
    let local = config.replace(
        &format!("{rules_dir}/"),
        &format!("{}/", repo.join("deploy/prometheus/rules").display()),
    );
    let dir = std::env::temp_dir().join(unique_name("promtool"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, local).expect("write the config");
    let output = output_of(Command::new(promtool).args(["check", "config"]).arg(&path));
    println!("{output}");
    std::fs::remove_dir_all(&dir).ok();
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

// --- deploy/Dockerfile -----------------------------------------------------------------------

/// What the tests read from the Dockerfile.
struct Dockerfile {
    text: String,
    /// `FROM image AS stage`, in order.
    stages: Vec<(String, String)>,
    /// `--bin NAME` of the builder's `cargo build`.
    built: BTreeSet<String>,
    /// `target/release/NAME` copied out of the cache mount.
    copied_out: BTreeSet<String>,
    /// `/out/NAME` copied into the runtime stage.
    shipped: BTreeSet<String>,
    /// The runtime stage's `USER`.
    user: Option<String>,
}

fn dockerfile() -> Dockerfile {
    let text =
        std::fs::read_to_string(repo().join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    // Instructions, with continuation lines joined and comments dropped.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut dockerfile = Dockerfile {
        text: text.clone(),
        stages: Vec::new(),
        built: BTreeSet::new(),
        copied_out: BTreeSet::new(),
        shipped: BTreeSet::new(),
        user: None,
    };
    for instruction in &instructions {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        match words
            .first()
            .map(|word| word.to_ascii_uppercase())
            .as_deref()
        {
            Some("FROM") => {
                let stage = match words.as_slice() {
                    [_, image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                        ((*image).to_owned(), (*name).to_owned())
                    }
                    _ => panic!("name every stage: {instruction}"),
                };
                dockerfile.stages.push(stage);
            }
            Some("RUN") if instruction.contains("cargo build") => {
                for pair in words.windows(2) {
                    if pair[0] == "--bin" {
                        dockerfile.built.insert(pair[1].to_owned());
                    }
                }
                for word in &words {
                    if let Some(name) = word.strip_prefix("target/release/") {
                        dockerfile.copied_out.insert(name.to_owned());
                    }
                }
            }
            Some("COPY") if instruction.contains("--from=builder") => {
                assert_eq!(
                    words.last(),
                    Some(&"/usr/local/bin/"),
                    "binaries go to /usr/local/bin/: {instruction}"
                );
                for word in &words {
                    if let Some(name) = word.strip_prefix("/out/") {
                        dockerfile.shipped.insert(name.to_owned());
                    }
                }
            }
            Some("USER") => dockerfile.user = words.get(1).map(|user| (*user).to_owned()),
            _ => {}
        }
    }
    dockerfile
}

/// The workspace's binary targets, from `cargo metadata`.
fn workspace_binaries() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let metadata = output_of(
        Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(repo()),
    );
    let metadata: Json = serde_json::from_str(&metadata).expect("cargo metadata JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|package| package["targets"].as_array().cloned().unwrap_or_default())
        .filter(|target| strings(&target["kind"]).iter().any(|kind| kind == "bin"))
        .map(|target| target["name"].as_str().expect("target name").to_owned())
        .collect()
}

#[test]
fn dockerfile_ships_every_deployable_binary() {
    let dockerfile = dockerfile();
    let workspace = workspace_binaries();
    let excluded: BTreeSet<String> = NOT_DEPLOYED
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    for name in &excluded {
        assert!(
            workspace.contains(name),
            "NOT_DEPLOYED names {name}, which the workspace no longer has"
        );
    }
    let deployable: BTreeSet<String> = workspace.difference(&excluded).cloned().collect();
    let missing: Vec<&String> = deployable.difference(&dockerfile.built).collect();
    assert!(
        missing.is_empty(),
        "deploy/Dockerfile does not build {missing:?} (or list them in NOT_DEPLOYED with a reason)"
    );
    for name in &dockerfile.built {
        assert!(
            workspace.contains(name),
            "deploy/Dockerfile builds {name}, which is no workspace binary"
        );
        assert!(
            !excluded.contains(name),
            "deploy/Dockerfile builds {name}, listed as not deployed"
        );
    }
    assert_eq!(
        dockerfile.copied_out, dockerfile.built,
        "every built binary is copied out of the cache mount"
    );
    assert_eq!(
        dockerfile.shipped, dockerfile.built,
        "the runtime stage gets every built binary"
    );
    for worker in WORKERS {
        assert!(dockerfile.built.contains(worker), "{worker} is built");
    }

    let [(builder, builder_name), .., (runtime, _)] = dockerfile.stages.as_slice() else {
        panic!("a build stage and a runtime stage: {:?}", dockerfile.stages);
    };
    assert_eq!(builder_name, "builder");
    let rustc = output_of(Command::new("rustc").arg("--version"));
    let toolchain: Vec<&str> = rustc
        .split_whitespace()
        .nth(1)
        .expect("rustc X.Y.Z")
        .split('.')
        .take(2)
        .collect();
    assert_eq!(
        builder,
        &format!("rust:{}-bookworm", toolchain.join(".")),
        "the image builds with the workspace's toolchain ({rustc})"
    );
    assert_eq!(runtime, "debian:bookworm-slim");
    let user = dockerfile.user.expect("the runtime stage sets USER");
    assert!(
        !matches!(user.split(':').next(), Some("0" | "root")),
        "the runtime user is not root: {user}"
    );
    assert!(
        dockerfile.text.contains("COPY schemas /app/schemas"),
        "the image carries the schemas for `retailctl schemas register`"
    );
}

#[test]
fn hadolint_accepts_the_dockerfile() {
    let output = output_of(
        Command::new(tool("hadolint"))
            .args(["--failure-threshold", "info"])
            .arg(repo().join("deploy/Dockerfile")),
    );
    println!("{output}");
}

// --- deploy/kubernetes -----------------------------------------------------------------------

/// The kustomizations: the base and every overlay.
fn kustomizations() -> Vec<PathBuf> {
    let root = repo().join("deploy/kubernetes");
    let mut dirs = vec![root.join("base")];
    let overlays = std::fs::read_dir(root.join("overlays")).expect("deploy/kubernetes/overlays");
    let mut overlays: Vec<PathBuf> = overlays
        .map(|entry| entry.expect("overlay entry").path())
        .filter(|path| path.join("kustomization.yaml").is_file())
        .collect();
    overlays.sort();
    assert!(!overlays.is_empty(), "at least one overlay");
    dirs.extend(overlays);
    dirs
}

/// `kubectl kustomize DIR`, as text.
fn render(dir: &Path) -> String {
    output_of(Command::new(tool("kubectl")).arg("kustomize").arg(dir))
}

fn objects(rendered: &str) -> Vec<Yaml> {
    serde_yaml_ng::Deserializer::from_str(rendered)
        .map(|document| {
            serde::Deserialize::deserialize(document).expect("kustomize renders valid YAML")
        })
        .filter(|object: &Yaml| !object.is_null())
        .collect()
}

fn kind_of(object: &Yaml) -> &str {
    object["kind"].as_str().unwrap_or("")
}

fn name_of(object: &Yaml) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

fn find<'a>(objects: &'a [Yaml], kind: &str, name: &str, context: &str) -> &'a Yaml {
    objects
        .iter()
        .find(|object| kind_of(object) == kind && name_of(object) == name)
        .unwrap_or_else(|| panic!("{context}: no {kind} {name}"))
}

/// `labels` is a subset of the object's `metadata.labels`.
fn labels_match(selector: &Yaml, labels: &Yaml) -> bool {
    selector.as_mapping().is_some_and(|selector| {
        !selector.is_empty()
            && selector
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
    })
}

#[test]
fn kubernetes_manifests_pass_the_kubernetes_and_crd_schemas() {
    let python = tool("python");
    let validator = repo().join("deploy/tools/validate_manifests.py");
    for dir in kustomizations() {
        let rendered = render(&dir);
        let file = std::env::temp_dir().join(format!("{}.yaml", unique_name("rendered")));
        std::fs::write(&file, &rendered).expect("write the rendered manifests");
        let report = output_of(
            Command::new(&python)
                .arg(&validator)
                .arg(&file)
                .args(KUBERNETES_VERSIONS),
        );
        std::fs::remove_file(&file).ok();
        println!("{}:\n{report}", dir.display());
        assert_eq!(
            report
                .lines()
                .filter(|line| line.starts_with("ok "))
                .count(),
            objects(&rendered).len(),
            "{}: every object was validated",
            dir.display()
        );
    }
}

/// A Deployment's container environment: its `env` values (secret references as `None`) and
/// the keys of the ConfigMaps it loads with `envFrom`.
fn container_env(
    objects: &[Yaml],
    container: &Yaml,
    context: &str,
) -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_sequence().into_iter().flatten() {
        let name = yaml_str(&source["configMapRef"]["name"], "envFrom configMapRef");
        let config_map = find(objects, "ConfigMap", name, context);
        for (key, value) in config_map["data"].as_mapping().into_iter().flatten() {
            env.insert(
                yaml_str(key, "ConfigMap key").to_owned(),
                value.as_str().map(str::to_owned),
            );
        }
    }
    for var in container["env"].as_sequence().into_iter().flatten() {
        let name = yaml_str(&var["name"], "env name").to_owned();
        let value = match &var["value"] {
            Yaml::String(value) => Some(value.clone()),
            _ => None,
        };
        if value.is_none() {
            assert!(
                var["valueFrom"]["secretKeyRef"]["name"].is_string()
                    || var["valueFrom"]["fieldRef"].is_mapping(),
                "{context}: {name} has neither a value nor a reference"
            );
        }
        env.insert(name, value);
    }
    env
}

#[test]
fn kubernetes_manifests_match_the_workers() {
    for dir in kustomizations() {
        let objects = objects(&render(&dir));
        let context = dir.display().to_string();
        assert!(
            !objects.iter().any(|object| kind_of(object) == "Secret"),
            "{context}: secrets are referenced, never part of the manifests"
        );
        let config_maps: Vec<&Yaml> = objects
            .iter()
            .filter(|object| kind_of(object) == "ConfigMap")
            .collect();
        for config_map in &config_maps {
            for (key, _) in config_map["data"].as_mapping().into_iter().flatten() {
                let key = yaml_str(key, "key").to_ascii_uppercase();
                assert!(
                    !["PASSWORD", "SECRET", "BASIC_AUTH", "USERNAME"]
                        .iter()
                        .any(|marker| key.contains(marker)),
                    "{context}: {key} is a credential: take it from a Secret, not a ConfigMap"
                );
            }
        }

        for worker in WORKERS {
            let context = format!("{context} {worker}");
            let deployment = find(&objects, "Deployment", worker, &context);
            let pod = &deployment["spec"]["template"];
            let pod_labels = &pod["metadata"]["labels"];
            assert!(
                labels_match(&deployment["spec"]["selector"]["matchLabels"], pod_labels),
                "{context}: the Deployment selects its pods"
            );
            let containers = yaml_seq(&pod["spec"]["containers"], "containers");
            let [container] = containers else {
                panic!("{context}: one container per pod");
            };
            assert_eq!(
                strings_of(&container["command"]),
                vec![worker.to_owned()],
                "{context}: the container runs the {worker} binary"
            );

            // Settings: names the binary reads, values the runtime accepts.
            let env = container_env(&objects, container, &context);
            let accepted = accepted_env(worker, &[]);
            let unknown = unknown_vars(env.keys(), &accepted);
            assert!(
                unknown.is_empty(),
                "{context}: sets {unknown:?}, which {worker} does not read"
            );
            assert!(
                !env.contains_key("WORKER_GROUP_ID"),
                "{context}: the ScaledObject's consumer groups assume the default group id"
            );
            for (name, value) in &env {
                let secret_like = ["PASSWORD", "BASIC_AUTH", "SASL_USERNAME"]
                    .iter()
                    .any(|marker| name.contains(marker));
                assert!(
                    !(secret_like && value.is_some()),
                    "{context}: {name} must come from a Secret reference, not a literal"
                );
            }
            let plain: BTreeMap<String, String> = env
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.clone()?)))
                .collect();
            let runtime = runtime_config(&plain, &context);
            let port = listens_on_all_interfaces(&runtime, &context);

            // Probes on the listener's port.
            let ports = yaml_seq(&container["ports"], "ports");
            let resolve = |probe_port: &Yaml| -> u64 {
                match probe_port {
                    Yaml::Number(number) => number.as_u64().expect("port number"),
                    Yaml::String(name) => ports
                        .iter()
                        .find(|port| port["name"].as_str() == Some(name))
                        .and_then(|port| port["containerPort"].as_u64())
                        .unwrap_or_else(|| panic!("{context}: no container port {name}")),
                    other => panic!("{context}: port {other:?}"),
                }
            };
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &container[probe]["httpGet"];
                assert_eq!(get["path"].as_str(), Some(path), "{context}: {probe} path");
                assert_eq!(
                    resolve(&get["port"]),
                    u64::from(port),
                    "{context}: {probe} port is WORKER_HTTP_ADDR's"
                );
            }

            // Drain within the grace period.
            let grace = pod["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30);
            assert!(
                Duration::from_secs(grace) > runtime.drain_deadline,
                "{context}: terminationGracePeriodSeconds {grace} must exceed the drain deadline {:?}",
                runtime.drain_deadline
            );

            // Resources and security.
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        container["resources"][bound][resource].is_string(),
                        "{context}: resources.{bound}.{resource}"
                    );
                }
            }
            let pod_security = &pod["spec"]["securityContext"];
            assert_eq!(
                pod_security["runAsNonRoot"].as_bool(),
                Some(true),
                "{context}"
            );
            assert_ne!(pod_security["runAsUser"].as_u64(), Some(0), "{context}");
            let security = &container["securityContext"];
            assert_eq!(
                security["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{context}"
            );
            assert_eq!(
                security["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{context}"
            );
            if let Some(dir) = plain.get("NOTIFICATION_DIR")
                && plain
                    .get("NOTIFICATION_CHANNEL")
                    .is_none_or(|channel| channel == "file")
            {
                let mounts = container["volumeMounts"].as_sequence();
                assert!(
                    mounts
                        .into_iter()
                        .flatten()
                        .any(|mount| mount["mountPath"].as_str() == Some(dir)),
                    "{context}: the file channel's {dir} is a mounted volume (read-only root)"
                );
            }

            // PDB, Service, ServiceMonitor.
            let pdb = find(&objects, "PodDisruptionBudget", worker, &context);
            assert!(
                labels_match(&pdb["spec"]["selector"]["matchLabels"], pod_labels),
                "{context}: the PodDisruptionBudget selects the pods"
            );
            let service = objects
                .iter()
                .find(|object| {
                    kind_of(object) == "Service"
                        && labels_match(&object["spec"]["selector"], pod_labels)
                })
                .unwrap_or_else(|| panic!("{context}: no Service selects the pods"));
            let service_ports = yaml_seq(&service["spec"]["ports"], "service ports");
            let metrics_port = service_ports
                .iter()
                .find(|service_port| resolve(&service_port["targetPort"]) == u64::from(port))
                .unwrap_or_else(|| panic!("{context}: the Service does not reach port {port}"));
            let monitor = find(&objects, "ServiceMonitor", worker, &context);
            assert!(
                labels_match(
                    &monitor["spec"]["selector"]["matchLabels"],
                    &service["metadata"]["labels"]
                ),
                "{context}: the ServiceMonitor selects the metrics Service"
            );
            let endpoints = yaml_seq(&monitor["spec"]["endpoints"], "endpoints");
            assert!(
                endpoints
                    .iter()
                    .any(|endpoint| endpoint["port"] == metrics_port["name"]
                        && endpoint["path"].as_str().unwrap_or("/metrics") == "/metrics"),
                "{context}: the ServiceMonitor scrapes /metrics on the Service's port"
            );

            // KEDA: the target, replica bound and trigger parameters (the groups themselves are
            // compared with the running workers' in keda_triggers_watch_the_workers_consumer_groups).
            let scaled = find(&objects, "ScaledObject", worker, &context);
            assert_eq!(
                scaled["spec"]["scaleTargetRef"]["name"].as_str(),
                Some(worker),
                "{context}: scales its Deployment"
            );
            let max = scaled["spec"]["maxReplicaCount"]
                .as_u64()
                .expect("maxReplicaCount");
            let partitions = u64::try_from(runtime.topic_partitions).expect("positive");
            assert!(
                (1..=partitions).contains(&max),
                "{context}: maxReplicaCount {max} must be at most the {partitions} partitions"
            );
            for trigger in yaml_seq(&scaled["spec"]["triggers"], "triggers") {
                assert_eq!(trigger["type"].as_str(), Some("kafka"), "{context}");
                let metadata = trigger["metadata"].as_mapping().expect("trigger metadata");
                for (key, _) in metadata {
                    let key = yaml_str(key, "metadata key");
                    assert!(
                        KEDA_KAFKA_PARAMETERS.contains(&key),
                        "{context}: {key} is no parameter of KEDA's Kafka scaler"
                    );
                }
                if let Some(var) = trigger["metadata"]["bootstrapServersFromEnv"].as_str() {
                    assert!(
                        plain.contains_key(var),
                        "{context}: bootstrapServersFromEnv names {var}, which the container lacks"
                    );
                } else {
                    assert!(
                        trigger["metadata"]["bootstrapServers"].is_string(),
                        "{context}"
                    );
                }
                if let Some(auth) = trigger["authenticationRef"]["name"].as_str() {
                    find(&objects, "TriggerAuthentication", auth, &context);
                }
            }
        }
    }
}

fn strings_of(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// The consumer groups a worker joins with `base` as its group id, seen by running it against
/// the test broker until it is ready: the runtime logs `topics ready` with the group of every
/// stage before the worker reports ready.
async fn joined_groups(worker: &str, base: &str, log_dir: &Path) -> BTreeSet<String> {
    let http = ANY_LOOPBACK_PORT.to_owned();
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers()),
        ("SCHEMA_REGISTRY_URL", schema_registry_url()),
        ("WORKER_GROUP_ID", base.to_owned()),
        ("WORKER_TOPIC_PREFIX", format!("{}.", unique_name("deploy"))),
        ("WORKER_HTTP_ADDR", http.clone()),
        ("WORKER_LOG_FORMAT", "json".to_owned()),
        (
            "NOTIFICATION_DIR",
            log_dir.join("notifications").display().to_string(),
        ),
    ];
    let mut process = Process::start(worker, worker, &[], &env, Some(http), log_dir);
    process.wait_ready(Duration::from_secs(120)).await;
    let groups = process
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Json>(line).ok())
        .filter(|line| line["message"] == "topics ready")
        .filter_map(|line| line["group_id"].as_str().map(str::to_owned))
        .collect();
    process.terminate(Duration::from_secs(30));
    groups
}

#[tokio::test(flavor = "multi_thread")]
async fn keda_triggers_watch_the_workers_consumer_groups() {
    let log_dir = std::env::temp_dir().join(unique_name("deploy-groups"));
    let mut actual = BTreeMap::new();
    // All five at once: each waits seconds for its group assignment.
    let runs = WORKERS.map(|worker| {
        let base = unique_name(worker);
        let log_dir = log_dir.clone();
        tokio::spawn(async move {
            let groups = joined_groups(worker, &base, &log_dir).await;
            assert!(!groups.is_empty(), "{worker} logged no consumer group");
            // Deployed without WORKER_GROUP_ID, the base is the worker's name.
            let groups: BTreeSet<String> = groups
                .iter()
                .map(|group| {
                    let stage = group
                        .strip_prefix(&base)
                        .unwrap_or_else(|| panic!("{worker}: group {group} is not under {base}"));
                    format!("{worker}{stage}")
                })
                .collect();
            (worker, groups)
        })
    });
    for run in runs {
        let (worker, groups) = run.await.expect("the worker run panicked");
        actual.insert(worker, groups);
    }
    println!("the workers' consumer groups: {actual:?}");

    for dir in kustomizations() {
        let objects = objects(&render(&dir));
        for (worker, groups) in &actual {
            let context = format!("{} {worker}", dir.display());
            let scaled = find(&objects, "ScaledObject", worker, &context);
            let triggers: Vec<String> = yaml_seq(&scaled["spec"]["triggers"], "triggers")
                .iter()
                .map(|trigger| {
                    yaml_str(&trigger["metadata"]["consumerGroup"], "consumerGroup").to_owned()
                })
                .collect();
            let unique: BTreeSet<String> = triggers.iter().cloned().collect();
            assert_eq!(
                unique.len(),
                triggers.len(),
                "{context}: one trigger per group"
            );
            assert_eq!(
                &unique, groups,
                "{context}: the KEDA triggers watch the groups the worker joins"
            );
        }
    }
    std::fs::remove_dir_all(&log_dir).ok();
}

#[test]
fn help_parsing_finds_every_variable() {
    let help = "  --a <A>  x [env: KAFKA_BOOTSTRAP_SERVERS=] [default: 1]\n  --b  y [env: SCHEMA_REGISTRY_BASIC_AUTH]\n  --c <C> [env: WORKER_HTTP_ADDR=127.0.0.1:9464]";
    assert_eq!(
        env_vars_in_help(help),
        [
            "KAFKA_BOOTSTRAP_SERVERS",
            "SCHEMA_REGISTRY_BASIC_AUTH",
            "WORKER_HTTP_ADDR"
        ]
        .map(str::to_owned)
        .into_iter()
        .collect()
    );
    assert_eq!(parse_seconds("1m30s"), Duration::from_secs(90));
    assert_eq!(parse_seconds("45"), Duration::from_secs(45));
    let _: SocketAddr = "0.0.0.0:9464".parse().expect("socket address");
}
