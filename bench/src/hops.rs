//! The hop benchmark: each arm reads the same pre-filled input on a fresh broker of its own and
//! is measured from its first output to its last.
//!
//! Arms (issue 7):
//! - **A1 passthrough**: raw consumer → producer of the same bytes, the workers' client settings;
//! - **A2 no-op hop**: the runtime with a stateless handler (decode → handle → encode → produce);
//! - **A2 inventory**: the real `inventory` binary, both stages: `OrderPlaced` → per-SKU holds
//!   (internal topic) → answers (internal topic) → `StockReserved`/`StockRejected`, with its state
//!   changelogs; at-least-once, and exactly-once where the broker has transactions;
//! - **A3 peer**: the same inventory dataflow in Quix Streams (`bench/peer/inventory.py`).
//!
//! Per arm and run: events/s over the span of the outputs' producer timestamps, CPU seconds per
//! million events of the arm's process and of the broker's (from `/proc`, between the first and
//! the last output seen), and the arm's peak and final RSS. Arms are interleaved (one run of
//! each, then the next round) and the median of the rounds is reported.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use retail_codec::{Codec, RegistrationMode, registry_settings};
use retail_events::{Event, Timestamp, Topic};
use retail_simulator::plan::{MixRates, PlanSettings, generate};

use crate::procstat::{self, CpuTrace, Trace};
use crate::stack::{BrokerKind, MOCK_PARTITIONS, Stack, terminate};

/// `retail-bench hops`.
#[derive(Debug, Clone, clap::Args)]
pub struct HopsArgs {
    /// Orders in the input of every arm.
    #[arg(long, default_value_t = 20_000)]
    pub orders: usize,
    /// Partitions of every topic (on the mock cluster it must be 4, its default).
    #[arg(long, default_value_t = MOCK_PARTITIONS)]
    pub partitions: i32,
    /// Rounds; each round runs every arm once, and the median round is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The broker (a fresh one per arm and round). The default is the local run command's:
    /// tansu on SQLite tops out near 50k records/s and slows down as its database grows, so it
    /// measures the broker more than the hop.
    #[arg(long, value_enum, default_value_t = BrokerKind::Mock)]
    pub broker: BrokerKind,
    /// Arms to run [default: all that the broker supports].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub arms: Vec<Arm>,
    /// Commit interval of every arm (workers' `--commit-interval`, Quix's `commit_interval`).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,
    /// How long an arm may take to emit all its outputs before the run counts as failed.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub arm_timeout: Duration,
    /// Python with Quix Streams (printed by `bench/peer/install`); the peer arm needs it.
    #[arg(long, env = "BENCH_PEER_PYTHON")]
    pub peer_python: Option<PathBuf>,
    /// Where runs keep logs and broker state.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
}

/// One arm of the hop benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Arm {
    Passthrough,
    Noop,
    Inventory,
    NoopEos,
    InventoryEos,
    Peer,
}

impl Arm {
    fn label(self) -> &'static str {
        match self {
            Self::Passthrough => "A1 raw passthrough (consumer → producer, bytes)",
            Self::Noop => "A2 no-op hop (runtime, at-least-once)",
            Self::Inventory => "A2 inventory (both stages, at-least-once)",
            Self::NoopEos => "A2 no-op hop (runtime, exactly-once)",
            Self::InventoryEos => "A2 inventory (both stages, exactly-once)",
            Self::Peer => "A3 inventory in Quix Streams",
        }
    }

    fn output(self) -> String {
        match self {
            Self::Passthrough => PASSTHROUGH_TOPIC.to_owned(),
            Self::Noop | Self::NoopEos => Topic::InventoryStockLevels.name().to_owned(),
            Self::Inventory | Self::InventoryEos | Self::Peer => {
                Topic::InventoryReservations.name().to_owned()
            }
        }
    }

    fn exactly_once(self) -> bool {
        matches!(self, Self::NoopEos | Self::InventoryEos)
    }
}

/// The passthrough arm's output topic (not in the catalogue: it carries copies).
const PASSTHROUGH_TOPIC: &str = "bench.passthrough.v1";

/// The figures of one arm in one round.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub events_per_second: f64,
    pub arm_cpu_per_million: f64,
    pub broker_cpu_per_million: f64,
    pub peak_rss_bytes: u64,
    pub final_rss_bytes: u64,
}

/// The median figures of one arm.
#[derive(Debug, Clone)]
pub struct HopRow {
    pub arm: Arm,
    pub rounds: Vec<Result<Measured, String>>,
}

impl HopRow {
    fn median(&self, figure: impl Fn(&Measured) -> f64) -> Option<f64> {
        let mut values: Vec<f64> = self.rounds.iter().flatten().map(figure).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(values[values.len() / 2])
    }
}

/// Runs the arms, interleaved, `rounds` times.
pub async fn run(args: &HopsArgs, repo: &Path, bin_dir: &Path) -> anyhow::Result<Vec<HopRow>> {
    let mut arms = if args.arms.is_empty() {
        vec![
            Arm::Passthrough,
            Arm::Noop,
            Arm::Inventory,
            Arm::NoopEos,
            Arm::InventoryEos,
            Arm::Peer,
        ]
    } else {
        args.arms.clone()
    };
    if !args.broker.has_transactions() {
        arms.retain(|arm| !arm.exactly_once());
    }
    if args.peer_python.is_none() && arms.contains(&Arm::Peer) {
        eprintln!("no --peer-python (run bench/peer/install): the peer arm is left out");
        arms.retain(|arm| *arm != Arm::Peer);
    }
    if args.broker == BrokerKind::Mock && args.partitions != MOCK_PARTITIONS {
        bail!(
            "on the mock cluster every topic has {MOCK_PARTITIONS} partitions (its workers' own \
             topics are created on first use with that many): use --partitions {MOCK_PARTITIONS}"
        );
    }
    let inputs = Inputs::generate(args.orders);
    let mut rows: Vec<HopRow> = arms
        .iter()
        .map(|arm| HopRow {
            arm: *arm,
            rounds: Vec::new(),
        })
        .collect();
    // Absolute: the stack script runs the broker from its own folder.
    let session = std::path::absolute(&args.work_dir)?.join(format!("hops-{}", std::process::id()));
    for round in 0..args.rounds {
        for row in &mut rows {
            let dir = session.join(format!("{:?}-{round}", row.arm).to_lowercase());
            let started = Instant::now();
            let result = run_arm(args, repo, bin_dir, &dir, row.arm, &inputs).await;
            match &result {
                Ok(measured) => eprintln!(
                    "round {round}: {:<48} {:>9.0} events/s, {:>6.1} CPU-s/M arm, {:>6.1} CPU-s/M broker, peak RSS {:.1} MiB ({:.0?} in all)",
                    row.arm.label(),
                    measured.events_per_second,
                    measured.arm_cpu_per_million,
                    measured.broker_cpu_per_million,
                    mib(measured.peak_rss_bytes),
                    started.elapsed()
                ),
                Err(error) => eprintln!("round {round}: {} FAILED: {error:#}", row.arm.label()),
            }
            row.rounds
                .push(result.map_err(|error| format!("{error:#}")));
        }
    }
    Ok(rows)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The input every arm reads: the initial stock of every SKU and the orders, already encoded.
struct Inputs {
    stock: Vec<Event>,
    orders: Vec<Event>,
}

impl Inputs {
    /// The simulator's orders (its default mix, so some are short of stock), due at once.
    fn generate(orders: usize) -> Self {
        let plan = generate(
            &PlanSettings {
                orders,
                rate_per_second: 1e9,
                mix: MixRates {
                    payment_failure: 0.05,
                    fraud: 0.03,
                    out_of_stock: 0.03,
                    missing_payment: 0.02,
                    scarce: 0.05,
                },
                payment_delay_min: Duration::ZERO,
                payment_delay_max: Duration::ZERO,
                ample_margin: 25,
            },
            1,
        );
        let start = Timestamp::now();
        Self {
            stock: plan
                .skus
                .iter()
                .filter_map(|sku| sku.initial_adjustment(start))
                .map(Event::StockAdjusted)
                .collect(),
            orders: plan
                .orders
                .iter()
                .map(|order| Event::OrderPlaced(order.order_placed(start)))
                .collect(),
        }
    }
}

async fn run_arm(
    args: &HopsArgs,
    repo: &Path,
    bin_dir: &Path,
    dir: &Path,
    arm: Arm,
    inputs: &Inputs,
) -> anyhow::Result<Measured> {
    let mut stack = Stack::start(args.broker, repo, bin_dir, dir).await?;
    let mut topics: Vec<(String, i32)> = Topic::ALL
        .iter()
        .map(|topic| (topic.name().to_owned(), args.partitions))
        .collect();
    topics.push((PASSTHROUGH_TOPIC.to_owned(), args.partitions));
    stack.create_topics(&topics).await?;
    let codec = Codec::connect(
        registry_settings(&stack.registry, None, Duration::from_secs(10))?,
        RegistrationMode::Register,
    )
    .await
    .context("registry")?;
    fill(&stack, &codec, inputs)?;

    let mut child = start_arm(args, bin_dir, dir, arm, &stack)?;
    let measured = measure(args, &stack, &mut child, arm, inputs.orders.len());
    terminate(&mut child, Duration::from_secs(20));
    measured
}

/// Produces the stock and then the orders, keyed as the catalogue says, and waits for them.
fn fill(stack: &Stack, codec: &Codec, inputs: &Inputs) -> anyhow::Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()?;
    let mut payload = Vec::with_capacity(1024);
    for event in inputs.stock.iter().chain(&inputs.orders) {
        codec.encode(event, &mut payload)?;
        let key = event.key();
        let mut record = BaseRecord::to(event.topic().name())
            .key(key.as_bytes())
            .payload(payload.as_slice());
        while let Err((error, returned)) = producer.send(record) {
            if !matches!(
                error,
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull
                )
            ) {
                bail!("producing the input: {error}");
            }
            record = returned;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    producer.flush(Duration::from_secs(300))?;
    Ok(())
}

fn start_arm(
    args: &HopsArgs,
    bin_dir: &Path,
    dir: &Path,
    arm: Arm,
    stack: &Stack,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join("arm.log"))?;
    let commit_interval = humantime::format_duration(args.commit_interval).to_string();
    let runtime_flags = |group: &str| -> Vec<String> {
        let mut flags: Vec<String> = [
            "--bootstrap-servers",
            &stack.bootstrap,
            "--schema-registry-url",
            &stack.registry,
            "--group-id",
            group,
            "--http-addr",
            "127.0.0.1:0",
            "--topic-partitions",
            &args.partitions.to_string(),
            "--commit-interval",
            &commit_interval,
            "--guarantee",
            if arm.exactly_once() {
                "exactly-once"
            } else {
                "at-least-once"
            },
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        if args.broker == BrokerKind::Mock {
            // The mock cluster has no CreateTopics; it creates the workers' own topics (dead
            // letters, changelogs) on first use, when the client allows it.
            flags.extend(
                [
                    "--create-topics",
                    "false",
                    "--kafka-config",
                    "allow.auto.create.topics=true",
                ]
                .map(String::from),
            );
        }
        flags
    };
    let mut command = match arm {
        Arm::Passthrough => {
            let mut command = Command::new(bin_dir.join("retail-bench"));
            command
                .arg("passthrough")
                .args([
                    "--input",
                    Topic::StorefrontOrders.name(),
                    "--output",
                    PASSTHROUGH_TOPIC,
                ])
                .args(runtime_flags("bench-passthrough"));
            command
        }
        Arm::Noop | Arm::NoopEos => {
            let mut command = Command::new(bin_dir.join("retail-bench"));
            command.arg("noop-worker").args(runtime_flags("bench-noop"));
            command
        }
        Arm::Inventory | Arm::InventoryEos => {
            let mut command = Command::new(bin_dir.join("inventory"));
            command.args(runtime_flags("bench-inventory"));
            command
        }
        Arm::Peer => {
            let python = args.peer_python.as_ref().context("--peer-python")?;
            let mut command = Command::new(python);
            command
                .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peer/inventory.py"))
                .args(["--bootstrap-servers", &stack.bootstrap])
                .args(["--schema-registry-url", &stack.registry])
                .args(["--group-id", "bench-peer"])
                .args([
                    "--commit-interval",
                    &args.commit_interval.as_secs_f64().to_string(),
                ])
                .args(["--state-dir", &dir.join("peer-state").display().to_string()]);
            if args.broker == BrokerKind::Mock {
                // As the workers' `allow.auto.create.topics`: Quix's changelog topics are
                // created on first use, and the benchmark's topic configs assumed.
                command.arg("--broker-without-admin-api");
            }
            command
        }
    };
    command
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    command.spawn().with_context(|| format!("starting {arm:?}"))
}

/// Reads the arm's output topic from the start until `expected` records, sampling the arm's and
/// the broker's counters at the first and the last.
fn measure(
    args: &HopsArgs,
    stack: &Stack,
    child: &mut Child,
    arm: Arm,
    expected: usize,
) -> anyhow::Result<Measured> {
    let reader: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .set("group.id", "bench-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let output = arm.output();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..args.partitions {
        assignment.add_partition_offset(&output, partition, Offset::Beginning)?;
    }
    reader.assign(&assignment)?;
    let started = Instant::now();
    let arm_pid = child.id();
    let arm_trace = CpuTrace::start(arm_pid, TRACE_INTERVAL);
    let broker_trace = CpuTrace::start(stack.broker_pid, TRACE_INTERVAL);
    let (mut seen, mut earliest, mut latest) = (0_usize, i64::MAX, i64::MIN);
    while seen < expected {
        if let Some(status) = child.try_wait()? {
            bail!("the arm exited ({status}) after {seen} of {expected} outputs");
        }
        if started.elapsed() > args.arm_timeout {
            bail!("{seen} of {expected} outputs after {:?}", args.arm_timeout);
        }
        let Some(message) = reader.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        seen += 1;
        let timestamp = message
            .timestamp()
            .to_millis()
            .context("an output without a timestamp")?;
        earliest = earliest.min(timestamp);
        latest = latest.max(timestamp);
    }
    // The trace must reach past the last output's timestamp.
    std::thread::sleep(TRACE_INTERVAL * 2);
    let end = procstat::sample(arm_pid)?;
    let (arm_trace, broker_trace) = (arm_trace.finish(), broker_trace.finish());
    let window = |trace: &Trace| {
        trace
            .cpu_between(earliest, latest)
            .context("the CPU trace does not cover the outputs' span")
    };
    let per_million = 1e6 / expected as f64;
    let span = Duration::from_millis(u64::try_from(latest - earliest).unwrap_or(0).max(1));
    Ok(Measured {
        events_per_second: expected as f64 / span.as_secs_f64(),
        arm_cpu_per_million: window(&arm_trace)? * per_million,
        broker_cpu_per_million: window(&broker_trace)? * per_million,
        peak_rss_bytes: end.peak_rss_bytes,
        final_rss_bytes: end.rss_bytes,
    })
}

/// How often the arm's and the broker's CPU time is read.
const TRACE_INTERVAL: Duration = Duration::from_millis(20);

/// The Markdown table of the hop benchmark, with the ratios the targets are stated in.
pub fn table(args: &HopsArgs, rows: &[HopRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Hops: {} orders, {} partitions, broker {}, commit interval {}, median of {} interleaved rounds.\n",
        args.orders,
        args.partitions,
        args.broker.label(),
        humantime::format_duration(args.commit_interval),
        args.rounds
    );
    let _ = writeln!(
        out,
        "| arm | events/s | arm CPU-s per M events | broker CPU-s per M events | events per arm CPU-s | peak RSS (MiB) | RSS at end (MiB) | failed rounds |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let figure = |value: Option<f64>, digits: usize| {
        value.map_or_else(|| "—".to_owned(), |value| format!("{value:.digits$}"))
    };
    for row in rows {
        let failed = row.rounds.iter().filter(|round| round.is_err()).count();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {failed} |",
            row.arm.label(),
            figure(row.median(|m| m.events_per_second), 0),
            figure(row.median(|m| m.arm_cpu_per_million), 1),
            figure(row.median(|m| m.broker_cpu_per_million), 1),
            figure(row.median(|m| 1e6 / m.arm_cpu_per_million.max(1e-9)), 0),
            figure(row.median(|m| mib(m.peak_rss_bytes)), 1),
            figure(row.median(|m| mib(m.final_rss_bytes)), 1),
        );
    }
    let rate = |arm: Arm| {
        rows.iter()
            .find(|row| row.arm == arm)
            .and_then(|row| row.median(|m| m.events_per_second))
    };
    let per_cpu = |arm: Arm| {
        rows.iter()
            .find(|row| row.arm == arm)
            .and_then(|row| row.median(|m| 1e6 / m.arm_cpu_per_million.max(1e-9)))
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "—".to_owned(),
    };
    let _ = writeln!(out, "\n| ratio | value | target |");
    let _ = writeln!(out, "| --- | ---: | --- |");
    let _ = writeln!(
        out,
        "| no-op hop / passthrough, events/s | {} | ≥ 0.80 |",
        ratio(rate(Arm::Noop), rate(Arm::Passthrough))
    );
    let _ = writeln!(
        out,
        "| inventory / passthrough, events/s | {} | ≥ 0.80 |",
        ratio(rate(Arm::Inventory), rate(Arm::Passthrough))
    );
    let _ = writeln!(
        out,
        "| inventory / Quix Streams, events per CPU-second | {} | ≥ 10 |",
        ratio(per_cpu(Arm::Inventory), per_cpu(Arm::Peer))
    );
    out
}
