//! Saga latency (issue 7, part 4): the whole saga, the five workers running as processes, at
//! fixed offered loads; how long an order takes from `OrderPlaced` to `ShipmentCreated`, and the
//! highest load the workers sustain without falling behind.
//!
//! Each load is one run of `retail-local` (the run command of `deploy/local/run`, from
//! `--bin-dir`): it starts a fresh broker, the registry, the five workers and the simulator, and
//! drains and stops everything when the simulator is done. This module adds only the
//! measurement: it reads where the run's processes answer from the run's `endpoints.json`, reads
//! the saga's topics with its own consumer while the run goes on, and samples every worker's
//! `/metrics` once a second.
//!
//! # What is measured, and why so
//!
//! - **No coordinated omission.** The simulator places orders at planned times, as offsets from
//!   one start instant, and stamps each `OrderPlaced` with its *intended* time
//!   (`envelope.occurred_at`), not the time it managed to send it. An order's latency is the
//!   Kafka timestamp of its `ShipmentCreated` (set by shipping's producer when it hands the
//!   record to librdkafka, so the final delivery of that one record is not counted) minus that
//!   intended time: a generator that falls behind makes the latency worse, never better.
//! - **Only the workers' and the broker's time.** The payment system answers at once
//!   (`SIMULATOR_PAYMENT_DELAY_MIN/MAX=0s`), fulfilment's pick-and-pack takes `--pick-pack-time`
//!   (0 s by default) and no order is meant to fail (every failure share is 0), so every order
//!   is expected to ship and nothing but the saga's own hops sits between the two events.
//! - **Warm-up.** Orders intended in the first `--warm-up` of a load are not counted; the
//!   window is the following `--duration`.
//! - **Lag growing?** Yes when orders of the window had not shipped when the run ended
//!   (`--drain-timeout` after the last order), or when latency climbs across the window (the
//!   median of its last fifth exceeds the first fifth's by more than half of it and 100 ms),
//!   or when a worker's `worker_consumer_lag_records` (summed over its stages, topics and
//!   partitions) grew from the window's first third to its last by more than the records it
//!   consumes in a second. The table names what fell behind: the workers, or `saga`. A load that holds
//!   keeps all three flat. Orders go on being placed for `--cool-down` after the window, so
//!   its last orders meet the same traffic as its first.
//! - **Where the time goes.** The consumer also reads the answer topics and records each
//!   order's Kafka timestamps along the way, so every hop's share is shown per load (see
//!   [`SEGMENTS`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use retail_codec::{Codec, RegistrationMode, registry_settings};
use retail_events::{Event, Topic};
use retail_local::scrape::sum_metric;
use retail_local::{BrokerKind, Endpoints, Summary};
use retail_runtime::config::KafkaSetting;
use retail_runtime::engine::EVENT_TYPE_HEADER;

/// Options of `retail-bench saga`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SagaArgs {
    /// Offered loads to try, in orders per second, comma-separated.
    #[arg(
        long,
        env = "BENCH_SAGA_RATES",
        value_delimiter = ',',
        default_value = "200,1000,5000"
    )]
    pub(crate) rates: Vec<f64>,

    /// How long each load is measured, after its warm-up.
    #[arg(
        long,
        env = "BENCH_SAGA_DURATION",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub(crate) duration: Duration,

    /// Orders intended in the first this-long of each load are not counted (connections,
    /// schema lookups, the first batches).
    #[arg(
        long,
        env = "BENCH_SAGA_WARM_UP",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub(crate) warm_up: Duration,

    /// Orders go on being placed this long after the window, so the window's last orders meet
    /// the same traffic as its first (timers of a partition wait for its inputs to move past
    /// them, and a run that stops placing orders leaves its last ones waiting); they are not
    /// counted.
    #[arg(
        long,
        env = "BENCH_SAGA_COOL_DOWN",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub(crate) cool_down: Duration,

    /// The broker each run starts: `mock` (librdkafka's mock cluster) or `tansu`.
    #[arg(long, env = "BENCH_SAGA_BROKER", value_enum, default_value_t = BrokerKind::Mock)]
    pub(crate) broker: BrokerKind,

    /// Folder with the release binaries: `retail-local`, the five workers, `simulator` and
    /// `dev-registry` (`cargo build --release --bins -p retail-local -p inventory -p fraud -p
    /// fulfilment -p shipping -p notification -p retail-simulator -p retail-dev-registry`).
    #[arg(long, env = "BENCH_SAGA_BIN_DIR", default_value = "target/release")]
    pub(crate) bin_dir: PathBuf,

    /// Fulfilment's pick-and-pack time. 0 s measures the workers and the broker alone; any
    /// other value adds itself (plus the timer's firing delay) to every order.
    #[arg(
        long,
        env = "BENCH_SAGA_PICK_PACK_TIME",
        default_value = "0s",
        value_parser = humantime::parse_duration
    )]
    pub(crate) pick_pack_time: Duration,

    /// A librdkafka property for every worker and the simulator, key=value (repeatable,
    /// comma-separated), passed as a `KAFKA_CONFIG_<NAME>` variable, e.g.
    /// `fetch.wait.max.ms=500` or `linger.ms=1`. Without it the run's own settings apply.
    #[arg(
        long = "kafka-config",
        env = "BENCH_SAGA_KAFKA_CONFIG",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub(crate) kafka_config: Vec<KafkaSetting>,

    /// How long a run may go on after its last order for the orders still in flight.
    #[arg(
        long,
        env = "BENCH_SAGA_DRAIN_TIMEOUT",
        default_value = "60s",
        value_parser = humantime::parse_duration
    )]
    pub(crate) drain_timeout: Duration,

    /// The simulator's seed.
    #[arg(long, env = "BENCH_SAGA_SEED", default_value_t = 1)]
    pub(crate) seed: u64,

    /// Folder for the runs' logs, one sub-folder per load [default:
    /// target/bench-saga/run-<unix time>].
    #[arg(long, env = "BENCH_SAGA_LOG_DIR")]
    pub(crate) log_dir: Option<PathBuf>,
}

/// Nearest-rank percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    /// `None` for no samples.
    fn of(samples_us: &mut [i64]) -> Option<Self> {
        samples_us.sort_unstable();
        let at = |share: f64| nearest_rank(samples_us, share).map(|us| us as f64 / 1000.0);
        Some(Self {
            p50: at(0.50)?,
            p99: at(0.99)?,
            p999: at(0.999)?,
            max: at(1.0)?,
        })
    }
}

/// The nearest-rank percentile of sorted samples.
fn nearest_rank(sorted: &[i64], share: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// One load's figures.
#[derive(Debug, Clone)]
pub(crate) struct SagaRow {
    /// The offered load, orders per second.
    pub(crate) offered_per_sec: f64,
    /// Orders that shipped per second within the window.
    pub(crate) achieved_per_sec: f64,
    /// `OrderPlaced` (intended time) to `ShipmentCreated`, orders of the window that shipped.
    pub(crate) latency: Option<Percentiles>,
    /// Whether the workers fell behind (see the module docs), and why.
    pub(crate) lag_growing: bool,
    pub(crate) lag_reason: String,
    /// What fell behind: the workers whose lag grew, `saga` when orders took ever longer or
    /// did not ship.
    pub(crate) behind: Vec<String>,
    /// Orders of the window that shipped / orders intended in it.
    pub(crate) completed: u64,
    pub(crate) expected: u64,
    /// Orders of the window that were cancelled (none is meant to be).
    pub(crate) cancelled: u64,
    /// The 1-minute load average when the window began and when it ended.
    pub(crate) load: (f64, f64),
    /// CPU used per process over the window, in cores (1.0: one core all the time).
    pub(crate) cpu: ByProcess<f64>,
    /// The largest resident set size of each process seen during the window, in bytes (the
    /// steady state: after the warm-up, at the offered load).
    pub(crate) rss: ByProcess<u64>,
    /// p50 and p99 of each of [`SEGMENTS`], in milliseconds, over the window's shipped orders.
    pub(crate) segments: Vec<Option<(f64, f64)>>,
    /// The broker and the client settings the load ran with.
    pub(crate) setup: String,
    /// Things the reader must know about the run (observer misses, unclean exits, ...).
    pub(crate) notes: Vec<String>,
}

/// What the consumer saw of one order: Kafka timestamps (ms) of its events, first of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Trace {
    /// `OrderPlaced`'s `envelope.occurred_at`: when the simulator meant to send it (µs).
    intended_us: Option<i64>,
    placed_ms: Option<i64>,
    payment_ms: Option<i64>,
    reserved_ms: Option<i64>,
    fraud_ms: Option<i64>,
    started_ms: Option<i64>,
    packed_ms: Option<i64>,
    shipped_ms: Option<i64>,
    cancelled_ms: Option<i64>,
}

/// The order's path, one segment per worker step, from Kafka timestamps (each the time the
/// event's producer handed it to librdkafka). Each segment after the first is that producer's
/// linger and delivery, the broker, the next consumer's fetch and its handling.
pub(crate) const SEGMENTS: [&str; 6] = [
    "simulator: intended time -> OrderPlaced sent",
    "inventory (3 hops: order stage, stock stage, order stage): OrderPlaced -> StockReserved",
    "fraud (2 hops: re-key, score): OrderPlaced -> FraudCleared",
    "fulfilment: last of the three answers -> FulfilmentStarted",
    "fulfilment: FulfilmentStarted -> OrderPacked (pick-and-pack timer)",
    "shipping: OrderPacked -> ShipmentCreated",
];

impl Trace {
    /// Keeps the earliest timestamp of a kind (a redelivered copy comes later).
    fn note(slot: &mut Option<i64>, at: i64) {
        *slot = Some(slot.map_or(at, |seen| seen.min(at)));
    }

    /// The segments of [`SEGMENTS`] in microseconds, where both ends were seen.
    fn segments(&self) -> [Option<i64>; 6] {
        let us = |ms: Option<i64>| ms.map(|ms| ms * 1000);
        let between = |from: Option<i64>, to: Option<i64>| Some(to? - from?);
        let answers = [
            self.placed_ms,
            self.payment_ms,
            self.reserved_ms,
            self.fraud_ms,
        ]
        .into_iter()
        .collect::<Option<Vec<i64>>>()
        .and_then(|times| times.into_iter().max());
        [
            between(self.intended_us, us(self.placed_ms)),
            between(us(self.placed_ms), us(self.reserved_ms)),
            between(us(self.placed_ms), us(self.fraud_ms)),
            between(us(answers), us(self.started_ms)),
            between(us(self.started_ms), us(self.packed_ms)),
            between(us(self.packed_ms), us(self.shipped_ms)),
        ]
    }
}

/// Reads the saga's topics from their beginning on its own thread until stopped, and returns
/// every order's [`Trace`].
struct Observer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<ObserverReport>>,
}

/// What the observer returns.
#[derive(Debug, Default)]
struct ObserverReport {
    traces: HashMap<String, Trace>,
    /// Records of the storefront topic that did not decode as `OrderPlaced`.
    undecodable: u64,
}

/// The topics the observer reads.
const OBSERVED: [Topic; 6] = [
    Topic::StorefrontOrders,
    Topic::Payments,
    Topic::InventoryReservations,
    Topic::FraudChecks,
    Topic::FulfilmentOrders,
    Topic::ShippingShipments,
];

impl Observer {
    /// Assigns every partition of [`OBSERVED`] at its beginning (each run has a fresh broker)
    /// and starts reading. Decoding (only `OrderPlaced`, for its intended time) may fetch a
    /// schema from the registry: it runs on `runtime`.
    fn start(
        bootstrap: &str,
        codec: Arc<Codec>,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "retail-bench-saga")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .context("creating the observer's consumer")?;
        let mut assignment = TopicPartitionList::new();
        for topic in OBSERVED {
            let metadata = consumer
                .fetch_metadata(Some(topic.name()), Duration::from_secs(30))
                .with_context(|| format!("reading the metadata of {}", topic.name()))?;
            let partitions = metadata
                .topics()
                .first()
                .map(|topic| topic.partitions().len())
                .unwrap_or_default();
            if partitions == 0 {
                bail!("topic {} has no partitions", topic.name());
            }
            for partition in 0..partitions {
                let partition = i32::try_from(partition).context("partition number")?;
                assignment.add_partition_offset(topic.name(), partition, Offset::Beginning)?;
            }
        }
        consumer
            .assign(&assignment)
            .context("assigning the observer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("saga-observer".to_owned())
            .spawn(move || observe(&consumer, &codec, &runtime, &stopping))
            .context("starting the observer thread")?;
        Ok(Self { stop, thread })
    }

    /// Stops reading and returns what was read.
    async fn finish(self) -> anyhow::Result<ObserverReport> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the observer thread panicked"))?
    }
}

/// The observer's loop (blocking).
fn observe(
    consumer: &BaseConsumer,
    codec: &Codec,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
) -> anyhow::Result<ObserverReport> {
    let mut report = ObserverReport::default();
    let names = OBSERVED.map(Topic::name);
    while !stop.load(Ordering::Relaxed) {
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        // Transport errors come when the run stops its broker; they end nothing here.
        let Ok(message) = polled else { continue };
        let (Some(key), Some(at_ms)) = (message.key(), message.timestamp().to_millis()) else {
            continue;
        };
        let order_id = String::from_utf8_lossy(key);
        let topic = message.topic();
        let event_type = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|header| header.key == EVENT_TYPE_HEADER)
                .and_then(|header| header.value)
        });
        let trace = report.traces.entry(order_id.into_owned()).or_default();
        if topic == names[0] {
            let event = match message.payload() {
                Some(payload) => runtime.block_on(codec.decode(payload)).ok(),
                None => None,
            };
            match event {
                Some(Event::OrderPlaced(placed)) => {
                    trace.intended_us = Some(placed.envelope.occurred_at.as_micros());
                    Trace::note(&mut trace.placed_ms, at_ms);
                }
                _ => report.undecodable += 1,
            }
        } else if topic == names[1] {
            Trace::note(&mut trace.payment_ms, at_ms);
        } else if topic == names[2] {
            if event_type == Some(b"StockReserved".as_slice()) {
                Trace::note(&mut trace.reserved_ms, at_ms);
            }
        } else if topic == names[3] {
            if event_type == Some(b"FraudCleared".as_slice()) {
                Trace::note(&mut trace.fraud_ms, at_ms);
            }
        } else if topic == names[4] {
            match event_type {
                Some(b"FulfilmentStarted") => Trace::note(&mut trace.started_ms, at_ms),
                Some(b"OrderPacked") => Trace::note(&mut trace.packed_ms, at_ms),
                Some(b"OrderCancelled") => Trace::note(&mut trace.cancelled_ms, at_ms),
                _ => {}
            }
        } else if topic == names[5] {
            Trace::note(&mut trace.shipped_ms, at_ms);
        }
    }
    Ok(report)
}

/// The machine and the workers at one moment.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    at_ms: i64,
    /// The 1-minute load average: other work on the machine skews the figures.
    load: f64,
    /// Per worker (in the run's order), `worker_consumer_lag_records` and
    /// `worker_records_consumed_total`, each summed over its stages, topics and partitions;
    /// `None` unless every worker answered.
    workers: Option<Vec<(f64, f64)>>,
    /// CPU seconds used so far by the run's processes (the launcher, which hosts the mock
    /// cluster, and its children) and by this benchmark, by process name.
    cpu: Vec<(String, f64)>,
    /// Their resident set sizes now, in bytes.
    rss: Vec<(String, u64)>,
}

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat` (100 on every
/// architecture Linux supports; `getconf CLK_TCK`).
const USER_HZ: f64 = 100.0;

/// Bytes per page: the unit of the resident set size in `/proc/<pid>/stat` (4 KiB on the
/// machines this runs on; `getconf PAGESIZE`).
const PAGE_BYTES: u64 = 4096;

/// A process's `/proc/<pid>/stat` figures.
struct ProcStat {
    name: String,
    parent: u32,
    /// User + system CPU seconds.
    cpu_seconds: f64,
    /// Resident set size, bytes.
    rss_bytes: u64,
}

/// A process's name, parent, CPU seconds and resident set size from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: the name may hold spaces and parentheses.
    let (head, rest) = text.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // Field 24 of stat(5), `rss`, in pages.
    let pages: u64 = fields.get(21)?.parse().ok()?;
    Some(ProcStat {
        name,
        parent,
        cpu_seconds: (user + system) / USER_HZ,
        rss_bytes: pages * PAGE_BYTES,
    })
}

/// Figures by process name.
type ByProcess<T> = Vec<(String, T)>;

/// CPU seconds and resident set sizes of `root`, its children and this process, by name
/// (blocking: reads `/proc`).
fn by_process(root: u32) -> (ByProcess<f64>, ByProcess<u64>) {
    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    let mut add = |pid: u32| {
        if let Some(stat) = proc_stat(pid) {
            cpu.push((stat.name.clone(), stat.cpu_seconds));
            rss.push((stat.name, stat.rss_bytes));
        }
    };
    add(std::process::id());
    add(root);
    let children = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| proc_stat(*pid).is_some_and(|stat| stat.parent == root));
    for child in children {
        add(child);
    }
    (cpu, rss)
}

/// Samples the load average, every worker's `/metrics` and the CPU time of the run's processes
/// (`root` and its children) once a second until `stop`.
async fn sample(
    workers: Vec<String>,
    root: u32,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<Sample> {
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let at_ms = unix_ms();
        let scraped = futures::future::join_all(workers.iter().map(|http| {
            let client = &client;
            async move {
                let response = client
                    .get(format!("http://{http}/metrics"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?;
                response.text().await.ok()
            }
        }))
        .await;
        let texts: Option<Vec<String>> = scraped.into_iter().collect();
        let (cpu, rss) = tokio::task::spawn_blocking(move || by_process(root))
            .await
            .unwrap_or_default();
        samples.push(Sample {
            at_ms,
            cpu,
            rss,
            load: load_average(),
            workers: texts.map(|texts| {
                texts
                    .iter()
                    .map(|text| {
                        (
                            sum_metric(text, "worker_consumer_lag_records"),
                            sum_metric(text, "worker_records_consumed_total"),
                        )
                    })
                    .collect()
            }),
        });
    }
    samples
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The 1-minute load average (Linux), `NaN` where there is none.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Runs every load of `args.rates` in turn and returns one row each.
pub(crate) async fn run(args: &SagaArgs) -> anyhow::Result<Vec<SagaRow>> {
    if args.rates.is_empty()
        || args
            .rates
            .iter()
            .any(|rate| !rate.is_finite() || *rate <= 0.0)
    {
        bail!("--rates must be positive numbers, got {:?}", args.rates);
    }
    if args.duration.is_zero() {
        bail!("--duration must be longer than zero");
    }
    let launcher = args.bin_dir.join("retail-local");
    if !launcher.is_file() {
        bail!(
            "{} not found: build the release binaries first (see --bin-dir)",
            launcher.display()
        );
    }
    let log_dir = args.log_dir.clone().unwrap_or_else(|| {
        PathBuf::from("target/bench-saga").join(format!("run-{}", unix_ms() / 1000))
    });
    let mut rows = Vec::with_capacity(args.rates.len());
    for rate in &args.rates {
        let dir = log_dir.join(format!("rate-{rate}"));
        eprintln!(
            "saga: {rate} orders/s for {} after a {} warm-up, logs in {}",
            humantime::format_duration(args.duration),
            humantime::format_duration(args.warm_up),
            dir.display()
        );
        let row = run_rate(args, *rate, &dir).await?;
        eprintln!("{}", table(std::slice::from_ref(&row)));
        rows.push(row);
    }
    Ok(rows)
}

/// One load: a `retail-local` run, observed.
async fn run_rate(args: &SagaArgs, rate: f64, dir: &Path) -> anyhow::Result<SagaRow> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let output = std::fs::File::create(dir.join("retail-local.out"))?;
    let summary_path = dir.join("summary.json");
    let placing = args.warm_up + args.duration + args.cool_down;
    let mut command = tokio::process::Command::new(args.bin_dir.join("retail-local"));
    command
        .args(["--broker", args.broker.name()])
        .args(["--rate", &rate.to_string()])
        .args(["--duration", &format!("{}ms", placing.as_millis())])
        .args(["--seed", &args.seed.to_string()])
        .args([
            "--pick-pack-time",
            &format!("{}ms", args.pick_pack_time.as_millis()),
        ])
        .args([
            "--drain-timeout",
            &format!("{}ms", args.drain_timeout.as_millis()),
        ])
        .arg("--no-tui")
        .arg("--summary-json")
        .arg(&summary_path)
        .arg("--log-dir")
        .arg(dir)
        .arg("--bin-dir")
        .arg(&args.bin_dir)
        .env("SIMULATOR_PAYMENT_DELAY_MIN", "0s")
        .env("SIMULATOR_PAYMENT_DELAY_MAX", "0s")
        .stdin(std::process::Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        .kill_on_drop(true);
    for share in [
        "--payment-failure-rate",
        "--fraud-rate",
        "--out-of-stock-rate",
        "--missing-payment-rate",
        "--scarce-rate",
    ] {
        command.args([share, "0"]);
    }
    for setting in &args.kafka_config {
        command.env(kafka_env_name(&setting.key)?, &setting.value);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", args.bin_dir.join("retail-local").display()))?;

    // The run writes where its processes answer once the workers are ready.
    let endpoints = loop {
        if let Some(endpoints) = Endpoints::read(dir)? {
            break endpoints;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "retail-local exited with {status} before its workers were ready; see {}",
                dir.join("retail-local.out").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let settings = registry_settings(
        &endpoints.schema_registry_url,
        None,
        Duration::from_secs(10),
    )?;
    let codec = Arc::new(Codec::connect(settings, RegistrationMode::LookupOnly).await?);
    let observer = Observer::start(
        &endpoints.bootstrap_servers,
        codec,
        tokio::runtime::Handle::current(),
    )?;
    let stop_sampling = tokio_util::sync::CancellationToken::new();
    let sampler = tokio::spawn(sample(
        endpoints
            .workers
            .iter()
            .map(|worker| worker.http.clone())
            .collect(),
        child.id().unwrap_or_default(),
        stop_sampling.clone(),
    ));
    let status = child.wait().await?;
    stop_sampling.cancel();
    let samples = sampler.await?;
    let report = observer.finish().await?;
    let names: Vec<String> = endpoints
        .workers
        .iter()
        .map(|worker| worker.name.clone())
        .collect();
    write_samples(&dir.join("samples.csv"), &names, &samples)?;

    let summary: Option<Summary> = std::fs::read_to_string(&summary_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let mut notes = Vec::new();
    if !status.success() {
        notes.push(format!(
            "retail-local exited with {status} (see {})",
            dir.join("retail-local.out").display()
        ));
    }
    if report.undecodable > 0 {
        notes.push(format!(
            "{} storefront records did not decode",
            report.undecodable
        ));
    }
    let placed = report
        .traces
        .values()
        .filter(|trace| trace.intended_us.is_some())
        .count() as u64;
    match &summary {
        Some(summary) => {
            if let Some(sent) = summary.simulator_orders_sent
                && sent != placed
            {
                notes.push(format!(
                    "the simulator sent {sent} orders, the observer read {placed}"
                ));
            }
            if summary.processes.iter().any(|process| !process.clean) {
                notes.push("a process of the run did not stop cleanly".to_owned());
            }
            let dead: u64 = summary.dead_letters.values().sum();
            if dead > 0 {
                notes.push(format!("{dead} records dead-lettered"));
            }
        }
        None => notes.push(format!("no summary at {}", summary_path.display())),
    }
    let mut row = analyse(
        rate,
        args.warm_up,
        args.duration,
        &report.traces,
        &names,
        &samples,
    );
    row.notes.extend(notes);
    row.setup = format!(
        "broker {}, pick-and-pack {}, client settings: {}",
        args.broker.name(),
        humantime::format_duration(args.pick_pack_time),
        if args.kafka_config.is_empty() {
            "the run command's own".to_owned()
        } else {
            args.kafka_config
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(row)
}

/// Writes the samples as CSV (time, load average, each worker's lag and consumed total), for
/// a closer look at a run.
fn write_samples(path: &Path, workers: &[String], samples: &[Sample]) -> anyhow::Result<()> {
    let mut csv = String::from("unix_ms,load");
    for worker in workers {
        let _ = write!(csv, ",{worker}_lag,{worker}_consumed");
    }
    csv.push('\n');
    for sample in samples {
        let _ = write!(csv, "{},{}", sample.at_ms, sample.load);
        for (lag, consumed) in sample.workers.iter().flatten() {
            let _ = write!(csv, ",{lag},{consumed}");
        }
        csv.push('\n');
    }
    std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))
}

/// The `KAFKA_CONFIG_<NAME>` variable of a librdkafka property (`linger.ms` ->
/// `KAFKA_CONFIG_LINGER_MS`); properties with `_` in their name have none.
fn kafka_env_name(key: &str) -> anyhow::Result<String> {
    if key.contains('_') || key.is_empty() {
        bail!("--kafka-config {key}: only properties without '_' can be passed as variables");
    }
    Ok(format!(
        "{}{}",
        retail_runtime::config::KAFKA_ENV_PREFIX,
        key.replace('.', "_").to_ascii_uppercase()
    ))
}

/// How far latency may climb across the window before the load counts as not held: the last
/// fifth's median may exceed the first fifth's by at most this much and by at most half of it.
const TREND_ALLOWANCE_US: i64 = 100_000;

/// How much a worker's consumer lag may grow across the window, in seconds of the records it
/// consumes: the gauge follows committed offsets (every 1 s) in librdkafka's statistics
/// (every 5 s), so even a load that holds shows about a second's worth, moving in steps.
const LAG_GROWTH_ALLOWANCE: Duration = Duration::from_secs(1);

/// The growth of a worker's lag from the first third of `samples` (seconds, lag, consumed
/// total) to the last (mean against mean, which smooths the gauge's steps), and the records
/// consumed per second; `None` for fewer than six samples.
fn lag_growth(samples: &[(f64, f64, f64)]) -> Option<(f64, f64)> {
    if samples.len() < 6 {
        return None;
    }
    let (first, last) = (samples.first()?, samples.last()?);
    let third = samples.len() / 3;
    let mean = |part: &[(f64, f64, f64)]| {
        part.iter().map(|(_, lag, _)| lag).sum::<f64>() / part.len() as f64
    };
    let growth = mean(&samples[samples.len() - third..]) - mean(&samples[..third]);
    Some((growth, (last.2 - first.2) / (last.0 - first.0)))
}

/// The figures of one load from what was observed: orders intended within
/// `[first order + warm_up, + duration)` count.
fn analyse(
    rate: f64,
    warm_up: Duration,
    duration: Duration,
    traces: &HashMap<String, Trace>,
    workers: &[String],
    samples: &[Sample],
) -> SagaRow {
    let mut row = SagaRow {
        offered_per_sec: rate,
        achieved_per_sec: 0.0,
        latency: None,
        lag_growing: true,
        lag_reason: "no order was observed".to_owned(),
        behind: Vec::new(),
        completed: 0,
        expected: 0,
        cancelled: 0,
        load: (f64::NAN, f64::NAN),
        cpu: Vec::new(),
        rss: Vec::new(),
        segments: vec![None; SEGMENTS.len()],
        notes: Vec::new(),
        setup: String::new(),
    };
    let Some(first_us) = traces.values().filter_map(|trace| trace.intended_us).min() else {
        return row;
    };
    let micros = |span: Duration| i64::try_from(span.as_micros()).unwrap_or(i64::MAX);
    let start_us = first_us + micros(warm_up);
    let end_us = start_us + micros(duration);
    let fifth_us = micros(duration) / 5;
    let in_window = |at_us: i64| (start_us..end_us).contains(&at_us);

    let mut latencies = Vec::new();
    let mut segments: Vec<Vec<i64>> = vec![Vec::new(); SEGMENTS.len()];
    let (mut early, mut late) = (Vec::new(), Vec::new());
    let mut shipped_in_window = 0_u64;
    for trace in traces.values() {
        if trace.shipped_ms.is_some_and(|ms| in_window(ms * 1000)) {
            shipped_in_window += 1;
        }
        let Some(intended_us) = trace.intended_us.filter(|at| in_window(*at)) else {
            continue;
        };
        row.expected += 1;
        if trace.cancelled_ms.is_some() {
            row.cancelled += 1;
        }
        let Some(shipped_ms) = trace.shipped_ms else {
            continue;
        };
        row.completed += 1;
        let latency = (shipped_ms * 1000 - intended_us).max(0);
        latencies.push(latency);
        if intended_us < start_us + fifth_us {
            early.push(latency);
        } else if intended_us >= end_us - fifth_us {
            late.push(latency);
        }
        for (kept, segment) in segments.iter_mut().zip(trace.segments()) {
            if let Some(segment) = segment {
                kept.push(segment);
            }
        }
    }
    row.achieved_per_sec = shipped_in_window as f64 / duration.as_secs_f64();
    row.latency = Percentiles::of(&mut latencies);
    row.segments = segments
        .iter_mut()
        .map(|samples| {
            samples.sort_unstable();
            let at = |share| nearest_rank(samples, share).map(|us| us as f64 / 1000.0);
            Some((at(0.5)?, at(0.99)?))
        })
        .collect();

    let window_samples: Vec<&Sample> = samples
        .iter()
        .filter(|sample| in_window(sample.at_ms * 1000))
        .collect();
    if let (Some(first), Some(last)) = (window_samples.first(), window_samples.last()) {
        row.load = (first.load, last.load);
        let seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
        row.cpu = last
            .cpu
            .iter()
            .filter_map(|(name, used)| {
                let before = first.cpu.iter().find(|(earlier, _)| earlier == name)?.1;
                Some((name.clone(), (used - before) / seconds))
            })
            .filter(|(_, cores)| cores.is_finite())
            .collect();
        for sample in &window_samples {
            for (name, bytes) in &sample.rss {
                match row.rss.iter_mut().find(|(known, _)| known == name) {
                    Some((_, largest)) => *largest = (*largest).max(*bytes),
                    None => row.rss.push((name.clone(), *bytes)),
                }
            }
        }
    }
    let mut reasons = Vec::new();
    let mut figures = Vec::new();
    let missing = row.expected - row.completed;
    if missing > 0 {
        row.behind.push("saga".to_owned());
        reasons.push(format!(
            "{missing} orders of the window did not ship ({} cancelled, the rest had not \
             ended when the run stopped)",
            row.cancelled
        ));
    }
    early.sort_unstable();
    late.sort_unstable();
    if let (Some(early_p50), Some(late_p50)) = (nearest_rank(&early, 0.5), nearest_rank(&late, 0.5))
    {
        let climb = late_p50 - early_p50;
        let trend = format!(
            "p50 {:.1} ms in the window's first fifth, {:.1} ms in its last",
            early_p50 as f64 / 1000.0,
            late_p50 as f64 / 1000.0
        );
        if climb > TREND_ALLOWANCE_US && climb > early_p50 / 2 {
            if !row.behind.contains(&"saga".to_owned()) {
                row.behind.push("saga".to_owned());
            }
            reasons.push(trend);
        } else {
            figures.push(trend);
        }
    }
    // Per worker: (seconds, lag, consumed total) of the window's full samples.
    let mut lag_figures = Vec::new();
    for (index, name) in workers.iter().enumerate() {
        let series: Vec<(f64, f64, f64)> = window_samples
            .iter()
            .filter_map(|sample| {
                let (lag, consumed) = *sample.workers.as_deref()?.get(index)?;
                Some((sample.at_ms as f64 / 1000.0, lag, consumed))
            })
            .collect();
        let Some((growth, consumed_per_sec)) = lag_growth(&series) else {
            continue;
        };
        if growth > LAG_GROWTH_ALLOWANCE.as_secs_f64() * consumed_per_sec {
            row.behind.push(name.clone());
            reasons.push(format!(
                "{name}'s consumer lag grew by {growth:.0} records from the window's first \
                 third to its last ({consumed_per_sec:.0} records consumed/s)"
            ));
        } else {
            lag_figures.push(format!("{name} {growth:+.0}"));
        }
    }
    if lag_figures.is_empty() && row.behind.is_empty() {
        figures.push("too few lag samples in the window".to_owned());
    } else if !lag_figures.is_empty() {
        figures.push(format!(
            "consumer lag from the window's first third to its last: {}",
            lag_figures.join(", ")
        ));
    }
    row.lag_growing = !reasons.is_empty();
    reasons.extend(figures);
    row.lag_reason = reasons.join("; ");
    row
}

fn milliseconds(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The rows as Markdown: the main table, why each load did or did not hold, and where the time
/// goes per load.
pub(crate) fn table(rows: &[SagaRow]) -> String {
    let mut out = String::new();
    let mut setups: Vec<&str> = rows.iter().map(|row| row.setup.as_str()).collect();
    setups.dedup();
    for setup in setups.iter().filter(|setup| !setup.is_empty()) {
        let _ = writeln!(out, "Setup: {setup}.\n");
    }
    out.push_str(
        "| offered orders/s | achieved orders/s | p50 ms | p99 ms | p99.9 ms | max ms | lag growing? | orders completed / expected | load avg (start, end) |\n\
         |---:|---:|---:|---:|---:|---:|---|---:|---|\n",
    );
    for row in rows {
        let latency = |pick: fn(&Percentiles) -> f64| {
            row.latency
                .as_ref()
                .map_or_else(|| "-".to_owned(), |latency| milliseconds(pick(latency)))
        };
        let _ = writeln!(
            out,
            "| {:.0} | {:.0} | {} | {} | {} | {} | {} | {} / {} | {:.2}, {:.2} |",
            row.offered_per_sec,
            row.achieved_per_sec,
            latency(|latency| latency.p50),
            latency(|latency| latency.p99),
            latency(|latency| latency.p999),
            latency(|latency| latency.max),
            if row.lag_growing {
                format!("yes ({})", row.behind.join(", "))
            } else {
                "no".to_owned()
            },
            row.completed,
            row.expected,
            row.load.0,
            row.load.1,
        );
    }
    out.push('\n');
    for row in rows {
        let _ = write!(
            out,
            "- {:.0} orders/s: {}",
            row.offered_per_sec, row.lag_reason
        );
        if row.cancelled > 0 {
            let _ = write!(out, "; {} orders cancelled", row.cancelled);
        }
        for note in &row.notes {
            let _ = write!(out, "; {note}");
        }
        out.push('\n');
    }
    per_process_table(
        &mut out,
        rows,
        "CPU per process, in cores (mean over the window; the machine's cores are shared)",
        |row| &row.cpu,
        |cores| format!("{cores:.2}"),
    );
    per_process_table(
        &mut out,
        rows,
        "Resident set size per process, MiB (the largest seen in the window)",
        |row| &row.rss,
        |bytes| format!("{:.1}", *bytes as f64 / (1024.0 * 1024.0)),
    );
    out.push_str("\nWhere the time goes (p50 / p99 ms of each step, shipped orders of the window):\n\n| step |");
    for row in rows {
        let _ = write!(out, " {:.0}/s |", row.offered_per_sec);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(rows.len()));
    out.push('\n');
    for (index, step) in SEGMENTS.iter().enumerate() {
        let _ = write!(out, "| {step} |");
        for row in rows {
            let cell = row.segments.get(index).copied().flatten().map_or_else(
                || "-".to_owned(),
                |(p50, p99)| format!("{} / {}", milliseconds(p50), milliseconds(p99)),
            );
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

/// A table of one figure per process (rows) and offered load (columns), under `title`.
fn per_process_table<T>(
    out: &mut String,
    rows: &[SagaRow],
    title: &str,
    figures: impl Fn(&SagaRow) -> &ByProcess<T>,
    show: impl Fn(&T) -> String,
) {
    use std::fmt::Write as _;
    let _ = write!(out, "\n{title}:\n\n| process |");
    for row in rows {
        let _ = write!(out, " {:.0}/s |", row.offered_per_sec);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(rows.len()));
    out.push('\n');
    let mut names: Vec<&String> = rows
        .iter()
        .flat_map(|row| figures(row).iter().map(|(name, _)| name))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let _ = write!(out, "| {name} |");
        for row in rows {
            let cell = figures(row)
                .iter()
                .find(|(process, _)| process == name)
                .map_or_else(|| "-".to_owned(), |(_, figure)| show(figure));
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An order intended at `intended_ms` whose every step took `step_ms`.
    fn shipped(intended_ms: i64, step_ms: i64) -> Trace {
        let placed = intended_ms + step_ms;
        Trace {
            intended_us: Some(intended_ms * 1000),
            placed_ms: Some(placed),
            payment_ms: Some(placed),
            reserved_ms: Some(placed + step_ms),
            fraud_ms: Some(placed + step_ms),
            started_ms: Some(placed + 2 * step_ms),
            packed_ms: Some(placed + 3 * step_ms),
            shipped_ms: Some(placed + 4 * step_ms),
            cancelled_ms: None,
        }
    }

    fn traces(orders: impl IntoIterator<Item = Trace>) -> HashMap<String, Trace> {
        orders
            .into_iter()
            .enumerate()
            .map(|(index, trace)| (format!("order-{index}"), trace))
            .collect()
    }

    /// Samples every second of `[from_ms, to_ms]` with a lag of `lag(second)`, 1000 records
    /// consumed per second.
    fn samples(from_ms: i64, to_ms: i64, lag: impl Fn(f64) -> f64) -> Vec<Sample> {
        (from_ms / 1000..=to_ms / 1000)
            .map(|second| Sample {
                at_ms: second * 1000,
                load: 1.0,
                cpu: vec![("inventory".to_owned(), second as f64 * 0.5)],
                rss: vec![("inventory".to_owned(), 40 << 20)],
                workers: Some(vec![
                    (lag(second as f64), second as f64 * 1000.0),
                    (0.0, 0.0),
                ]),
            })
            .collect()
    }

    fn workers() -> Vec<String> {
        vec!["inventory".to_owned(), "shipping".to_owned()]
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<i64> = (1..=1000).collect();
        assert_eq!(nearest_rank(&sorted, 0.5), Some(500));
        assert_eq!(nearest_rank(&sorted, 0.999), Some(999));
        assert_eq!(nearest_rank(&sorted, 1.0), Some(1000));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn a_steady_load_holds_and_warm_up_orders_do_not_count() {
        // 100 orders/s for 10 s from t = 1,000 s; the first 2 s are warm-up and slow.
        let orders = (0..1000).map(|index| {
            let intended = 1_000_000 + index * 10;
            shipped(intended, if index < 200 { 10 } else { 4 })
        });
        let row = analyse(
            100.0,
            Duration::from_secs(2),
            Duration::from_secs(8),
            &traces(orders),
            &workers(),
            &samples(1_000_000, 1_011_000, |_| 50.0),
        );
        assert_eq!((row.completed, row.expected), (800, 800));
        let latency = row.latency.expect("latencies");
        // Four steps of 4 ms after a 4 ms send: 20 ms for every counted order.
        assert_eq!((latency.p50, latency.max), (20.0, 20.0));
        assert!(!row.lag_growing, "{}", row.lag_reason);
        assert_eq!(row.segments[0], Some((4.0, 4.0)));
        assert_eq!(row.segments[5], Some((4.0, 4.0)));
        assert!(
            (row.achieved_per_sec - 100.0).abs() < 1.0,
            "{}",
            row.achieved_per_sec
        );
    }

    #[test]
    fn climbing_latency_means_the_load_did_not_hold() {
        // Each order waits 2 ms longer than the one before: the workers fall behind.
        let orders = (0..1000).map(|index| shipped(1_000_000 + index * 10, index / 2));
        let row = analyse(
            100.0,
            Duration::ZERO,
            Duration::from_secs(10),
            &traces(orders),
            &workers(),
            &samples(1_000_000, 1_010_000, |_| 50.0),
        );
        assert!(row.lag_growing);
        assert!(row.lag_reason.contains("first fifth"), "{}", row.lag_reason);
    }

    #[test]
    fn growing_consumer_lag_or_unfinished_orders_mean_the_load_did_not_hold() {
        let steady = || (0..1000).map(|index| shipped(1_000_000 + index * 10, 4));
        // Lag grows by 300 records/s against 1000 consumed/s.
        let row = analyse(
            100.0,
            Duration::ZERO,
            Duration::from_secs(10),
            &traces(steady()),
            &workers(),
            &samples(1_000_000, 1_010_000, |second| second * 300.0),
        );
        assert!(row.lag_growing);
        // Ten samples in the window: the means of the first and last three are seven seconds apart.
        assert!(
            row.lag_reason
                .contains("inventory's consumer lag grew by 2100 records")
                && row.behind == ["inventory"],
            "{}",
            row.lag_reason
        );

        let mut unfinished = traces(steady());
        if let Some(trace) = unfinished.get_mut("order-500") {
            trace.shipped_ms = None;
        }
        let row = analyse(
            100.0,
            Duration::ZERO,
            Duration::from_secs(10),
            &unfinished,
            &workers(),
            &samples(1_000_000, 1_010_000, |_| 50.0),
        );
        assert!(row.lag_growing);
        assert_eq!((row.completed, row.expected), (999, 1000));
        assert!(
            row.lag_reason
                .contains("1 orders of the window did not ship"),
            "{}",
            row.lag_reason
        );
    }

    #[test]
    fn the_table_has_a_row_per_load_and_a_column_per_load_in_the_steps() {
        let row = analyse(
            100.0,
            Duration::ZERO,
            Duration::from_secs(10),
            &traces((0..1000).map(|index| shipped(1_000_000 + index * 10, 4))),
            &workers(),
            &samples(1_000_000, 1_010_000, |_| 50.0),
        );
        let text = table(&[row.clone(), row]);
        assert!(
            text.contains(
                "| 100 | 100 | 20.0 | 20.0 | 20.0 | 20.0 | no | 1000 / 1000 | 1.00, 1.00 |"
            ),
            "{text}"
        );
        assert!(text.contains("| step | 100/s | 100/s |"), "{text}");
        // Half a CPU second per second.
        assert!(text.contains("| inventory | 0.50 | 0.50 |"), "{text}");
        assert!(
            text.contains("| shipping: OrderPacked -> ShipmentCreated | 4.0 / 4.0 | 4.0 / 4.0 |"),
            "{text}"
        );
    }

    #[test]
    fn kafka_properties_become_variables() {
        assert_eq!(
            kafka_env_name("fetch.wait.max.ms").expect("valid"),
            "KAFKA_CONFIG_FETCH_WAIT_MAX_MS"
        );
        assert!(kafka_env_name("ssl_thing").is_err());
    }
}
