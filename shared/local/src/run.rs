//! The run itself: build, start the broker and the registry, create the topics and register the
//! schemas, start the five workers and the simulator, show the live view, and stop everything in
//! order (simulator, workers, registry, broker) when asked or when a `--duration` run has
//! drained, then build the summary.
//!
//! Child processes are started from the future `run` is, which `main` drives on the main
//! thread (see `children` for why that matters); background tasks only read Kafka and HTTP.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::RDKafkaErrorCode;
use retail_codec::{Codec, RegistrationMode, registry_settings};
use retail_events::Topic;
use tokio_util::sync::CancellationToken;

use crate::build::{Binaries, build, ensure_tansu, spinner};
use crate::children::{ChildProcess, Spec, free_port};
use crate::config::{BrokerKind, Config};
use crate::endpoints::{Endpoints, WorkerEndpoint};
use crate::error::LaunchError;
use crate::observe::{self, OBSERVED, Observer};
use crate::scrape::{WorkerMetrics, scrape};
use crate::summary::{ProcessExit, Summary, stock_balance};
use crate::view::View;

/// The five workers, in the order they are started and listed.
pub const WORKERS: [&str; 5] = [
    "inventory",
    "fraud",
    "fulfilment",
    "shipping",
    "notification",
];

/// How long the simulator places orders when the run lasts until Ctrl-C.
const INTERACTIVE_SIMULATION: Duration = Duration::from_secs(3600);

/// How long every order must have ended with no worker reporting lag before a `--duration`
/// run stops: longer than the workers' statistics interval (5 s), which the lag gauge follows.
const SETTLE: Duration = Duration::from_secs(6);

/// How long a worker may take to become ready (restoring state, joining its group).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The broker and registry of the run, and what must outlive the workers.
struct Stack {
    /// Which broker, for messages and the summary.
    broker: String,
    bootstrap: String,
    registry: String,
    /// The mock cluster, when it is the broker: it lives in this process and must outlive
    /// every client, so it is dropped last.
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    /// The broker process (tansu), stopped last.
    broker_process: Option<ChildProcess>,
    /// The registry process, stopped before the broker.
    registry_process: Option<ChildProcess>,
}

/// The processes of the run, in stop order.
#[derive(Default)]
struct Fleet {
    simulator: Option<ChildProcess>,
    workers: Vec<ChildProcess>,
    /// How each stopped process ended, for the summary.
    exits: Vec<ProcessExit>,
}

fn note_exit(
    exits: &mut Vec<ProcessExit>,
    process: &ChildProcess,
    status: std::process::ExitStatus,
    killed: bool,
) {
    exits.push(ProcessExit {
        name: process.name.clone(),
        pid: process.pid,
        exit: status.to_string(),
        clean: status.success() && !killed,
    });
}

/// The log folder: `--log-dir`, or a fresh one under the workspace's target folder.
fn log_dir(config: &Config, workspace: &Path) -> PathBuf {
    config.log_dir.clone().unwrap_or_else(|| {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        workspace
            .join("target/local-run")
            .join(format!("run-{seconds}"))
    })
}

/// Runs the whole system until `shutdown` (or the end of a `--duration` run) and returns the
/// summary, also written to `--summary-json`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Summary, LaunchError> {
    config.validate()?;
    let workspace = config.workspace_dir();
    let log_dir = log_dir(&config, &workspace);
    std::fs::create_dir_all(&log_dir).map_err(|source| LaunchError::Io {
        what: format!("creating {}", log_dir.display()),
        source,
    })?;
    println!("logs of every process: {}", log_dir.display());

    let launched = Instant::now();
    let binaries = match &config.bin_dir {
        Some(dir) => Binaries::in_dir(dir)?,
        None => {
            let (profile, build_log) = (config.build_profile(), log_dir.join("build.log"));
            tokio::select! {
                built = build(&workspace, &profile, &build_log) => built?,
                () = shutdown.cancelled() => return Err(interrupted("building")),
            }
        }
    };

    let built = Instant::now();
    let mut fleet = Fleet::default();
    let mut stack = tokio::select! {
        started = start_stack(&config, &workspace, &binaries, &log_dir) => started?,
        () = shutdown.cancelled() => return Err(interrupted("starting the broker")),
    };
    let outcome = async {
        let started = tokio::select! {
            started = start_saga(&config, &binaries, &log_dir, &stack, &mut fleet) => Some(started?),
            () = shutdown.cancelled() => None,
        };
        match started {
            Some(saga) => {
                let timings = (
                    built.duration_since(launched).as_secs_f64(),
                    saga.started.duration_since(built).as_secs_f64(),
                );
                println!(
                    "built in {:.1} s, started in {:.1} s",
                    timings.0, timings.1
                );
                let mut summary = watch(&config, &log_dir, &stack, &mut fleet, saga, &shutdown).await?;
                (summary.build_secs, summary.startup_secs) = timings;
                Ok(summary)
            }
            None => Err(interrupted("starting the workers")),
        }
    }
    .await;
    let stopping = spinner("stopping the registry and the broker");
    for process in [
        stack.registry_process.as_mut(),
        stack.broker_process.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        let (status, killed) = process.stop(config.stop_deadline).await;
        note_exit(&mut fleet.exits, process, status, killed);
    }
    stopping.finish_and_clear();
    drop(stack.mock.take());
    let mut summary = outcome?;
    summary.processes = fleet.exits;
    summary.broker = stack.broker;
    summary.bootstrap_servers = stack.bootstrap;
    summary.schema_registry_url = stack.registry;
    if let Some(path) = &config.summary_json {
        let json = serde_json::to_vec_pretty(&summary).map_err(|error| LaunchError::Summary {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        std::fs::write(path, json).map_err(|error| LaunchError::Summary {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
    }
    Ok(summary)
}

fn interrupted(during: &str) -> LaunchError {
    LaunchError::Task(format!("interrupted while {during}"))
}

/// Starts (or names) the broker and the registry.
async fn start_stack(
    config: &Config,
    workspace: &Path,
    binaries: &Binaries,
    log_dir: &Path,
) -> Result<Stack, LaunchError> {
    let partitions = config.effective_partitions();
    if let (Some(bootstrap), Some(registry)) =
        (&config.bootstrap_servers, &config.schema_registry_url)
    {
        println!("broker: the cluster at {bootstrap}, registry {registry}");
        create_topics(bootstrap, partitions).await?;
        return Ok(Stack {
            broker: "external".to_owned(),
            bootstrap: bootstrap.clone(),
            registry: registry.clone(),
            mock: None,
            broker_process: None,
            registry_process: None,
        });
    }
    let mut stack = match config.broker {
        BrokerKind::Tansu => {
            let tansu = ensure_tansu(workspace, &log_dir.join("install.log")).await?;
            // A fresh database per run in its log folder (tansu 0.6.0 on SQLite slows down as
            // its database grows), or the one kept across runs with --keep-data.
            let data = if config.keep_data {
                workspace.join("target/local-run/tansu-data")
            } else {
                log_dir.join("broker-data")
            };
            std::fs::create_dir_all(&data).map_err(|source| LaunchError::Io {
                what: format!("creating {}", data.display()),
                source,
            })?;
            let bar = spinner("starting the local broker (tansu)");
            let port = free_port()?;
            let address = format!("127.0.0.1:{port}");
            let url = format!("tcp://{address}");
            let mut process = ChildProcess::start(
                &Spec {
                    name: "broker".to_owned(),
                    program: tansu,
                    args: vec![
                        "broker".to_owned(),
                        "--listener-url".to_owned(),
                        url.clone(),
                        "--advertised-listener-url".to_owned(),
                        url,
                        // tansu resolves a relative sqlite path against its working directory.
                        "--storage-engine".to_owned(),
                        "sqlite://tansu.db".to_owned(),
                    ],
                    env: Vec::new(),
                    cwd: Some(data),
                    http: None,
                },
                log_dir,
            )?;
            process
                .wait_until(Duration::from_secs(30), async |_| {
                    tokio::net::TcpStream::connect(&address).await.is_ok()
                })
                .await?;
            bar.finish_and_clear();
            Stack {
                broker: BrokerKind::Tansu.name().to_owned(),
                bootstrap: address,
                registry: String::new(),
                mock: None,
                broker_process: Some(process),
                registry_process: None,
            }
        }
        BrokerKind::Mock => {
            let mock =
                MockCluster::new(1).map_err(LaunchError::kafka("starting the mock cluster"))?;
            let bootstrap = mock.bootstrap_servers();
            // The mock cluster has no CreateTopics: its own API creates the catalogue topics
            // and the registry's; the workers' own topics appear on first use.
            for topic in Topic::ALL {
                mock.create_topic(topic.name(), partitions, 1)
                    .map_err(LaunchError::kafka(format!("creating {}", topic.name())))?;
            }
            mock.create_topic("_schemas", 1, 1)
                .map_err(LaunchError::kafka("creating _schemas"))?;
            Stack {
                broker: BrokerKind::Mock.name().to_owned(),
                bootstrap,
                registry: String::new(),
                mock: Some(mock),
                broker_process: None,
                registry_process: None,
            }
        }
    };
    println!("broker: {} at {}", stack.broker, stack.bootstrap);

    let bar = spinner("starting the schema registry");
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let mut registry = ChildProcess::start(
        &Spec {
            name: "registry".to_owned(),
            program: binaries.path("dev-registry"),
            args: vec![
                "--listen".to_owned(),
                listen.clone(),
                "--bootstrap-servers".to_owned(),
                stack.bootstrap.clone(),
            ],
            env: vec![("RUST_LOG".to_owned(), "info".to_owned())],
            cwd: None,
            http: None,
        },
        log_dir,
    )?;
    let client = reqwest::Client::new();
    let subjects = format!("http://{listen}/subjects");
    let started = registry
        .wait_until(Duration::from_secs(60), async |_| {
            client
                .get(&subjects)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
        })
        .await;
    stack.registry = format!("http://{listen}");
    stack.registry_process = Some(registry);
    // Stopped by the caller on failure too: `stack` is dropped after its processes' kill.
    started?;
    bar.finish_and_clear();
    println!("schema registry: {}", stack.registry);
    if stack.mock.is_none() {
        create_topics(&stack.bootstrap, partitions).await?;
    }
    Ok(stack)
}

/// Creates every catalogue topic that is missing, with `partitions` partitions.
async fn create_topics(bootstrap: &str, partitions: i32) -> Result<(), LaunchError> {
    let admin: AdminClient<DefaultClientContext> = observe::client(bootstrap)
        .create()
        .map_err(LaunchError::kafka("creating the admin client"))?;
    let topics: Vec<NewTopic<'_>> = Topic::ALL
        .iter()
        .map(|topic| NewTopic::new(topic.name(), partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(LaunchError::kafka("creating the catalogue topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(LaunchError::Task(format!("creating topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

/// The variable that sets `fetch.wait.max.ms` of the workers and the simulator.
const FETCH_WAIT_VARIABLE: &str = "KAFKA_CONFIG_FETCH_WAIT_MAX_MS";

/// `--fetch-wait-max` as the variable the workers and the simulator read, for the mock cluster
/// (it holds a fetch that found nothing for the whole wait, records arriving meanwhile or not);
/// `None` for tansu (it holds fetches too, but measured, its own cost per fetch dominates and
/// more fetches only load it more), for an existing cluster, or when the variable is already
/// set (it is then passed on as it is).
fn fetch_wait_setting(config: &Config, stack: &Stack) -> Option<(String, String)> {
    if stack.mock.is_none() || std::env::var_os(FETCH_WAIT_VARIABLE).is_some() {
        return None;
    }
    Some((
        FETCH_WAIT_VARIABLE.to_owned(),
        config.fetch_wait_max.as_millis().to_string(),
    ))
}

/// What `watch` needs from the start-up.
struct Saga {
    observer: Observer,
    /// Inventory's stock before the run, for the balance.
    stock_before: BTreeMap<String, inventory::SkuState>,
    /// The simulator's summary file.
    simulator_summary: PathBuf,
    started: Instant,
}

/// The stock stage's changelog (`<inventory group>.stock` is the stage's group).
fn stock_changelog() -> String {
    "inventory.stock.stock.changelog".to_owned()
}

/// Registers the schemas, starts the observer, the workers and the simulator.
async fn start_saga(
    config: &Config,
    binaries: &Binaries,
    log_dir: &Path,
    stack: &Stack,
    fleet: &mut Fleet,
) -> Result<Saga, LaunchError> {
    let partitions = config.effective_partitions();
    let bar = spinner("registering the schemas");
    let settings = registry_settings(&stack.registry, None, Duration::from_secs(10))?;
    let codec = Arc::new(Codec::connect(settings, RegistrationMode::Register).await?);
    bar.finish_and_clear();

    let observed: Vec<String> = OBSERVED
        .iter()
        .map(|topic| topic.name().to_owned())
        .collect();
    let (bootstrap, changelog) = (stack.bootstrap.clone(), stock_changelog());
    let (starts, stock_before) = tokio::task::spawn_blocking(move || {
        Ok::<_, LaunchError>((
            observe::ends(&bootstrap, &observed, partitions)?,
            observe::stock_state(&bootstrap, &changelog, partitions)?,
        ))
    })
    .await
    .map_err(|error| LaunchError::Task(error.to_string()))??;
    let observer = Observer::start(&stack.bootstrap, codec, &starts, partitions)?;

    let bar = spinner("starting the workers");
    let mut env = vec![
        (
            "KAFKA_BOOTSTRAP_SERVERS".to_owned(),
            stack.bootstrap.clone(),
        ),
        ("SCHEMA_REGISTRY_URL".to_owned(), stack.registry.clone()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ];
    if let Some(setting) = fetch_wait_setting(config, stack) {
        println!(
            "workers and simulator: fetch.wait.max.ms={} (the {} broker holds a fetch that found nothing for its whole wait)",
            setting.1, stack.broker
        );
        env.push(setting);
    }
    let mock = stack.mock.is_some();
    for worker in WORKERS {
        let http = format!("127.0.0.1:{}", free_port()?);
        let mut args: Vec<String> = vec![
            "--group-id".into(),
            worker.into(),
            "--instance-id".into(),
            format!("{worker}-0"),
            "--http-addr".into(),
            http.clone(),
            "--topic-partitions".into(),
            partitions.to_string(),
            "--drain-deadline".into(),
            "5s".into(),
        ];
        if mock {
            args.extend(
                [
                    "--create-topics",
                    "false",
                    "--kafka-config",
                    "allow.auto.create.topics=true",
                ]
                .map(String::from),
            );
        }
        match worker {
            "fulfilment" => args.extend([
                "--answer-deadline".into(),
                humantime::format_duration(config.answer_deadline).to_string(),
                "--pick-pack-time".into(),
                humantime::format_duration(config.pick_pack_time).to_string(),
            ]),
            "notification" => args.extend([
                "--channel".into(),
                "file".into(),
                "--notification-dir".into(),
                log_dir.join("notifications").display().to_string(),
            ]),
            _ => {}
        }
        let process = ChildProcess::start(
            &Spec {
                name: worker.to_owned(),
                program: binaries.path(worker),
                args,
                env: env.clone(),
                cwd: None,
                http: Some(http),
            },
            log_dir,
        )?;
        fleet.workers.push(process);
    }
    let client = reqwest::Client::new();
    let workers_started = Instant::now();
    for (ready, worker) in fleet.workers.iter_mut().enumerate() {
        bar.set_message(format!(
            "starting the workers: {ready} of {} ready, waiting for {}",
            WORKERS.len(),
            worker.name
        ));
        worker.wait_ready(&client, READY_TIMEOUT).await?;
    }
    bar.finish_and_clear();
    println!(
        "five workers ready in {:.1} s (consumer groups joined, state restored)",
        workers_started.elapsed().as_secs_f64()
    );
    println!(
        "\n{:<14} {:>8}  {:<40} log",
        "process", "pid", "metrics, health, readiness"
    );
    for worker in &fleet.workers {
        let http = worker.http.clone().unwrap_or_default();
        println!(
            "{:<14} {:>8}  http://{http}/{{metrics,healthz,readyz}}  {}",
            worker.name,
            worker.pid,
            worker.log_path.display()
        );
    }
    Endpoints {
        broker: stack.broker.clone(),
        bootstrap_servers: stack.bootstrap.clone(),
        schema_registry_url: stack.registry.clone(),
        workers: fleet
            .workers
            .iter()
            .map(|worker| WorkerEndpoint {
                name: worker.name.clone(),
                pid: worker.pid,
                http: worker.http.clone().unwrap_or_default(),
            })
            .collect(),
    }
    .write(log_dir)?;

    let simulator_summary = log_dir.join("simulator-summary.json");
    if config.no_simulator {
        println!(
            "\nno simulator: feed the saga yourself on {} (Avro, Confluent framing, registry {}):\n  {}",
            stack.bootstrap,
            stack.registry,
            [
                Topic::StorefrontOrders,
                Topic::Payments,
                Topic::WarehouseStockAdjustments
            ]
            .map(Topic::name)
            .join(", ")
        );
    } else {
        let duration = config.duration.unwrap_or(INTERACTIVE_SIMULATION);
        let mut args: Vec<String> = vec![
            "--seed".into(),
            config.seed.to_string(),
            "--rate".into(),
            config.rate.to_string(),
            "--duration".into(),
            humantime::format_duration(duration).to_string(),
            "--topic-partitions".into(),
            partitions.to_string(),
            "--linger".into(),
            "5s".into(),
            "--summary-file".into(),
            simulator_summary.display().to_string(),
        ];
        for (flag, value) in config.shares() {
            if let Some(value) = value {
                args.push(format!("--{flag}"));
                args.push(value.to_string());
            }
        }
        if mock {
            args.extend(["--create-topics", "false"].map(String::from));
        }
        let simulator = ChildProcess::start(
            &Spec {
                name: "simulator".to_owned(),
                program: binaries.path("simulator"),
                args,
                env,
                cwd: None,
                http: None,
            },
            log_dir,
        )?;
        println!(
            "{:<14} {:>8}  {:<40} {}",
            "simulator",
            simulator.pid,
            format!(
                "{} orders/s for {}",
                config.rate,
                humantime::format_duration(duration)
            ),
            simulator.log_path.display()
        );
        fleet.simulator = Some(simulator);
    }
    println!();
    Ok(Saga {
        observer,
        stock_before,
        simulator_summary,
        started: Instant::now(),
    })
}

/// The simulator's count of orders sent, from its summary file.
fn simulator_orders_sent(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let summary: retail_simulator::summary::Summary = serde_json::from_str(&text).ok()?;
    Some(summary.orders_sent)
}

/// Scrapes every worker's metrics at once.
async fn scrape_all(client: &reqwest::Client, workers: &[ChildProcess]) -> Vec<WorkerMetrics> {
    futures::future::join_all(workers.iter().map(|worker| async {
        match &worker.http {
            Some(http) => scrape(client, http).await,
            None => WorkerMetrics::default(),
        }
    }))
    .await
}

/// Shows the live view until Ctrl-C or, with `--duration`, until the run has drained; then
/// stops the simulator and the workers and builds the summary.
async fn watch(
    config: &Config,
    log_dir: &Path,
    stack: &Stack,
    fleet: &mut Fleet,
    saga: Saga,
    shutdown: &CancellationToken,
) -> Result<Summary, LaunchError> {
    let client = reqwest::Client::new();
    let mut view = View::new(!config.no_tui && !config.non_interactive());
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut metrics: Vec<WorkerMetrics> = vec![WorkerMetrics::default(); fleet.workers.len()];
    // With --duration: when the orders stopped coming (simulator exited, or the duration is
    // over without one), from when the drain is timed.
    let mut placing_ended: Option<Instant> = None;
    let mut orders_sent: Option<u64> = None;
    let mut failure: Option<String> = None;
    // Since when every order has ended and no worker reports lag.
    let mut settled_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => break,
        }
        let scraped = scrape_all(&client, &fleet.workers).await;
        for (kept, fresh) in metrics.iter_mut().zip(scraped) {
            // Keep the last figures of a worker that stopped answering.
            if fresh.up {
                *kept = fresh;
            } else {
                kept.up = false;
            }
        }
        let mut rows = BTreeMap::new();
        for (worker, worker_metrics) in fleet.workers.iter_mut().zip(&metrics) {
            let running = worker.exited().is_none();
            if !running && failure.is_none() {
                failure = Some(format!(
                    "{} exited; see {}",
                    worker.name,
                    worker.log_path.display()
                ));
            }
            rows.insert(
                worker.name.clone(),
                (worker.http.clone(), *worker_metrics, running),
            );
        }
        if let Some(simulator) = fleet.simulator.as_mut()
            && let Some(status) = simulator.exited()
            && orders_sent.is_none()
        {
            orders_sent = Some(simulator_orders_sent(&saga.simulator_summary).unwrap_or(0));
            if !status.success() && failure.is_none() {
                failure = Some(format!(
                    "the simulator exited with {status}; see {}",
                    simulator.log_path.display()
                ));
            }
            if placing_ended.is_none() {
                placing_ended = Some(Instant::now());
            }
        }
        if fleet.simulator.is_none()
            && placing_ended.is_none()
            && config
                .duration
                .is_some_and(|duration| saga.started.elapsed() >= duration)
        {
            placing_ended = Some(Instant::now());
        }
        let figures = saga.observer.figures();
        let status = match (placing_ended, &failure) {
            (_, Some(failure)) => format!("FAILING: {failure}"),
            (Some(_), None) if config.non_interactive() => "draining".to_owned(),
            (Some(_), None) => "simulator finished".to_owned(),
            (None, None) if fleet.simulator.is_some() => "running".to_owned(),
            (None, None) => "waiting for your events".to_owned(),
        };
        view.show(&status, &figures, &rows);
        if !config.non_interactive() {
            continue;
        }
        if failure.is_some() {
            break;
        }
        if let Some(ended) = placing_ended {
            let all_seen = orders_sent.is_none_or(|sent| figures.placed >= sent);
            // Every order has ended; the workers may still be reading the last events (inventory
            // the last shipments). Stop once every worker reported no lag for longer than its
            // statistics interval (5 s), so the final state is the settled one.
            let lag: u64 = metrics.iter().map(|worker| worker.lag).sum();
            if all_seen && figures.in_flight == 0 && lag == 0 {
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLE {
                    break;
                }
            } else {
                settled_since = None;
            }
            if ended.elapsed() > config.drain_timeout {
                println!(
                    "drain timeout: {} orders without a terminal state after {}",
                    figures.in_flight,
                    humantime::format_duration(config.drain_timeout)
                );
                break;
            }
        }
    }
    view.release();
    let elapsed = saga.started.elapsed();

    // Stop in order: the simulator (it sends the payments still due), then the workers.
    let bar = spinner(if fleet.simulator.is_some() {
        "stopping the simulator"
    } else {
        "stopping"
    });
    if let Some(simulator) = fleet.simulator.as_mut() {
        let (status, killed) = simulator.stop(Duration::from_secs(30)).await;
        note_exit(&mut fleet.exits, simulator, status, killed);
        if orders_sent.is_none() {
            orders_sent = simulator_orders_sent(&saga.simulator_summary);
        }
    }
    if settled_since.is_none_or(|since| since.elapsed() < SETTLE) {
        // Stopped by Ctrl-C (or a failure) mid-flow: let the workers handle what they have
        // read, and the payments the simulator sent on its way out, so the final state is a
        // settled one; bounded, orders waiting for a deadline stay in flight.
        bar.set_message(format!(
            "letting the workers finish what they read (at most {})",
            humantime::format_duration(config.settle_timeout)
        ));
        let deadline = Instant::now() + config.settle_timeout;
        let mut quiet_since: Option<Instant> = None;
        while Instant::now() < deadline {
            let scraped = scrape_all(&client, &fleet.workers).await;
            let lag: u64 = scraped.iter().map(|worker| worker.lag).sum();
            if scraped.iter().all(|worker| worker.up) && lag == 0 {
                if quiet_since.get_or_insert_with(Instant::now).elapsed() >= SETTLE {
                    break;
                }
            } else {
                quiet_since = None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    bar.set_message("stopping the workers");
    let last = scrape_all(&client, &fleet.workers).await;
    for (kept, fresh) in metrics.iter_mut().zip(last) {
        if fresh.up {
            *kept = fresh;
        }
    }
    let deadline = config.stop_deadline;
    let stopped =
        futures::future::join_all(fleet.workers.iter_mut().map(|worker| worker.stop(deadline)))
            .await;
    for (worker, (status, killed)) in fleet.workers.iter().zip(stopped) {
        note_exit(&mut fleet.exits, worker, status, killed);
    }
    bar.set_message("reading the saga's last records and inventory's state");
    let observed = saga.observer.finish(Duration::from_secs(30)).await?;
    let (bootstrap, changelog, partitions) = (
        stack.bootstrap.clone(),
        stock_changelog(),
        config.effective_partitions(),
    );
    let stock_after = tokio::task::spawn_blocking(move || {
        observe::stock_state(&bootstrap, &changelog, partitions)
    })
    .await
    .map_err(|error| LaunchError::Task(error.to_string()))??;
    bar.finish_and_clear();

    let figures = observed.figures();
    let mut summary = Summary {
        broker: String::new(),
        bootstrap_servers: String::new(),
        schema_registry_url: String::new(),
        log_dir: log_dir.display().to_string(),
        elapsed_secs: elapsed.as_secs_f64(),
        build_secs: 0.0,
        startup_secs: 0.0,
        simulator_orders_sent: orders_sent,
        orders_placed: 0,
        orders_shipped: 0,
        orders_cancelled: 0,
        cancelled_by_reason: BTreeMap::new(),
        orders_not_terminal: 0,
        orders_multiple_terminal: 0,
        throughput_orders_per_sec: figures.terminal() as f64 / elapsed.as_secs_f64().max(1.0),
        latency_p50_ms: None,
        latency_p99_ms: None,
        latency_max_ms: None,
        dead_letters: BTreeMap::new(),
        consumer_lag: BTreeMap::new(),
        stock: Vec::new(),
        all_terminal: false,
        stock_balanced: false,
        undecodable_records: observed.undecodable,
        processes: Vec::new(),
    };
    summary.set_figures(&figures);
    if orders_sent.is_some_and(|sent| sent != figures.placed) {
        summary.all_terminal = false;
    }
    let names: HashMap<&str, &WorkerMetrics> = fleet
        .workers
        .iter()
        .map(|worker| worker.name.as_str())
        .zip(&metrics)
        .collect();
    for (name, worker_metrics) in names {
        summary
            .dead_letters
            .insert(name.to_owned(), worker_metrics.dead_lettered);
        summary
            .consumer_lag
            .insert(name.to_owned(), worker_metrics.lag);
    }
    summary.stock = stock_balance(
        &saga.stock_before,
        &stock_after,
        observed.stocked(),
        observed.shipped_units(),
        summary.all_terminal,
    );
    summary.stock_balanced = summary.stock.iter().all(|sku| sku.balanced);
    Ok(summary)
}
