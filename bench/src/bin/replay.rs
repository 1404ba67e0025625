//! `replay`: an offline replay of one worker's per-record path, without Kafka or a registry, for
//! counting instructions per event under callgrind (issue 7). `retail-bench instructions` runs
//! it; it also runs on its own and prints what it replayed:
//!
//!     cargo build --release -p retail-bench --bins
//!     target/release/replay --path order-stage --events 2000
//!
//! # What one record goes through
//! A deterministic set of input records is built and Confluent-framed up front, with an offline
//! codec (made-up schema ids, every catalogue type). Orders come from the simulator's own
//! generator (`retail_simulator::plan`, its default mix: 1 to 4 lines, realistic names and
//! addresses); SKU commands are what the real inventory order stage emits for those orders.
//! Then, per record, what the engine (`retail_runtime::engine`) does between librdkafka handing
//! it a record and it handing librdkafka the outputs:
//!
//! 1. decode the framed bytes (`Codec::decode`, through a runtime handle's `block_on`, as the
//!    engine does);
//! 2. count it and its end-to-end latency (`Telemetry`, into the Prometheus recorder a worker
//!    installs); take the incoming trace context (the record's `traceparent`, or a root trace);
//! 3. stateful stages: look the input up in the key's dedup ring and take the key's state
//!    (`PartitionStore::seen`, kept across records like the engine keeps it);
//! 4. run the real handler (`OrderStage`, `StockStage`, or a no-op) on a
//!    copy of the state, timed for the handler-duration histogram;
//! 5. per output: encode it (`Codec::encode`, into a reused buffer), name its topic, its key,
//!    its `traceparent` and `event_type` headers, count it as produced;
//! 6. stateful stages: schedule its timer, and store the new state with the input in the dedup
//!    ring (`PartitionStore::apply`); every `--batch-size` records (the engine's batch), encode
//!    one changelog record per key the batch changed (`PartitionStore::take_changes`, postcard).
//!
//! Not included: librdkafka (polling, producing, headers, delivery callbacks), the engine's
//! offset and progress bookkeeping (a few uncontended mutexes and map inserts per record), the
//! dead-letter path. One difference: the engine encodes each output into a fresh `Vec`
//! (`encode_to_vec`), this replay into one reused buffer.
//!
//! # Counting only the path
//! Everything is deterministic (fixed seed, times and ids; only hash-map seeds and the wall
//! clock read for the latency metric vary). Each measured record runs inside
//! [`measured_record`], and the harness checks each record's results in [`Verifier::verify`]:
//! callgrind collects inside the first and not inside the second (see
//! `bench/src/replay_paths.rs`), so set-up, generation, warm-up and checks are not counted. The
//! checks make a broken path fail instead of reporting a figure: every decoded event must equal
//! the original, every output must be what the handler must emit for the input and must decode
//! back to itself, and the counts must add up.
//!
//! # The stock stage's steady state
//! A SKU's state holds the orders in flight and up to `--closed-order-limit` recently closed
//! orders, and every batch that changes it rewrites all of it, so a hold costs more on a busy
//! SKU than on a fresh one. Before the measured holds, `--warm-up-orders` orders run
//! through the stage unmeasured, and every order is shipped (or, if a hold was refused,
//! released) once `--orders-in-flight` later orders have been placed, so the measured holds see
//! SKUs in the state a running worker's SKUs are in.

#[path = "../replay_paths.rs"]
#[allow(
    dead_code,
    reason = "shared with the instructions subcommand, which lists the paths this binary runs"
)]
mod replay_paths;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::hint::black_box;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use inventory::{InventoryConfig, OrderStage, StockStage};
use replay_paths::ReplayPath;
use retail_codec::{Codec, RegisteredEvent};
use retail_events::inventory::{LowStock, SkuCommand, SkuCommandKind};
use retail_events::storefront::OrderPlaced;
use retail_events::warehouse::{StockAdjusted, StockAdjustmentReason};
use retail_events::{EVENT_TYPES, Envelope, Event, EventId, Timestamp, Topic};
use retail_runtime::engine::EVENT_TYPE_HEADER;
use retail_runtime::state::{Applied, DedupPolicy, PartitionStore, Seen};
use retail_runtime::telemetry::{Telemetry, install_prometheus};
use retail_runtime::topics::TopicNames;
use retail_runtime::trace::TraceParent;
use retail_runtime::{Context, Handler, HandlerError};
use retail_simulator::plan::{PlanSettings, generate};

/// The replay's options.
#[derive(Debug, Parser)]
#[command(
    name = "replay",
    about = "Replays one worker's per-record path offline, for instruction counts under callgrind"
)]
struct Options {
    /// The path to replay.
    #[arg(long, value_enum)]
    path: ReplayPath,
    /// Input records measured.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    events: u64,
    /// Seed of the simulated orders (the simulator's generator).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// stock-hold: orders run through the stock stage, unmeasured, before the measured holds.
    #[arg(long, default_value_t = 5_000)]
    warm_up_orders: usize,
    /// stock-hold: an order is shipped (or released) once this many later orders are placed.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    orders_in_flight: u64,
    /// Records per batch: the changed keys' changelog records are encoded once per batch, as
    /// the engine does (its `--batch-size` default).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// The inventory worker's own settings (its flags and defaults).
    #[command(flatten)]
    inventory: InventoryConfig,
}

/// When the replayed traffic starts: 2026-01-01T00:00:00Z. Fixed, so every run replays the
/// same bytes.
const START_MICROS: i64 = 1_767_225_600_000_000;

/// Orders per simulated plan. The orders are generated in plans of this size with consecutive
/// seeds, so a run of N records replays the first N records of any longer run: the difference
/// between two runs is exactly the records the longer one adds.
const CHUNK_ORDERS: usize = 500;

/// `producer` of the replay's own `StockAdjusted` events (as in the no-op hop).
const BENCH_PRODUCER: &str = "bench";

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    // The engine decodes through `Handle::block_on` of the worker's multi-threaded runtime, on
    // its own thread; so does the replay, from the main thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // Telemetry records into the recorder a worker installs, so metrics cost what they cost.
    install_prometheus().context("metrics recorder")?;
    let codec = offline_codec();
    let mut verifier = Verifier::new(&codec, options.batch_size);
    let events = usize::try_from(options.events).context("--events")?;
    let replay = Replay {
        options: &options,
        codec: &codec,
        runtime: runtime.handle().clone(),
        events,
    };
    let measured = run(&replay, &mut verifier)?;
    let summary = verifier.finish(options.path, measured)?;
    println!("{summary}");
    Ok(())
}

/// Replays the options' path; returns how many records were measured.
fn run(replay: &Replay<'_>, verifier: &mut Verifier<'_>) -> anyhow::Result<usize> {
    match replay.options.path {
        ReplayPath::NoopAdjusted => replay.noop_adjusted(verifier),
        ReplayPath::NoopOrder => replay.orders(
            WorkerPath::new(NoOp, "bench-noop", replay),
            Expect::one_low_stock,
            verifier,
        ),
        ReplayPath::OrderStage => replay.orders(
            WorkerPath::new(
                OrderStage::new(&replay.options.inventory),
                "inventory.orders",
                replay,
            ),
            Expect::holds,
            verifier,
        ),
        ReplayPath::StockHold => replay.stock_holds(verifier),
        ReplayPath::DecodeOrder => replay.orders(
            CodecPath::new(replay.codec, CodecStep::Decode),
            |_| Expect::CodecOnly,
            verifier,
        ),
        ReplayPath::EncodeOrder => replay.orders(
            CodecPath::new(replay.codec, CodecStep::Encode),
            |_| Expect::CodecOnly,
            verifier,
        ),
    }
}

/// Every catalogue event type with a made-up schema id, as a registry would hand them out.
fn offline_codec() -> Codec {
    let registered: Vec<RegisteredEvent> = EVENT_TYPES
        .iter()
        .zip(1_u32..)
        .map(|(descriptor, number)| RegisteredEvent {
            descriptor,
            schema_id: 100 + number,
        })
        .collect();
    Codec::new(None, &registered)
}

/// Polls a future once: the offline codec's decoding never waits (every schema id is known).
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Runs one measured record. Callgrind counts the instructions executed in here (and in what it
/// calls), except inside [`Verifier::verify`]; `inline(never)` keeps the function, and the
/// symbol callgrind looks for, in the binary.
#[inline(never)]
fn measured_record(
    path: &mut dyn RecordPath,
    record: &Record,
    verifier: &mut Verifier<'_>,
) -> anyhow::Result<Processed> {
    path.process(black_box(record), Some(verifier))
}

/// One input record, framed and ready, with what it must cause.
#[derive(Debug)]
struct Record {
    /// Its topic's broker name.
    topic: String,
    /// Its key (the state key of stateful stages).
    key: String,
    /// Its offset in its topic.
    offset: i64,
    /// Its Kafka timestamp: the handler's clock.
    timestamp: Timestamp,
    /// Its `traceparent` header, if its producer wrote one.
    traceparent: Option<Vec<u8>>,
    /// The Confluent-framed value.
    payload: Vec<u8>,
    /// The event the value encodes.
    event: Event,
    /// What handling it must emit.
    expect: Expect,
}

/// What the handler must emit for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Nothing: the codec alone runs.
    CodecOnly,
    /// One `LowStock` of this SKU (the no-op handler).
    LowStockOf(String),
    /// One `HOLD` per SKU, of these units, for the order (the order stage).
    Holds(BTreeMap<String, i32>),
    /// One answer to the hold, and at most one `LowStock` of its SKU (the stock stage).
    HoldAnswer,
    /// Not checked: a record that sets the scene (a restock, a shipment), not a measured one.
    Unmeasured,
}

impl Expect {
    /// The no-op handler's output for an order: a `LowStock` of its first line's SKU.
    fn one_low_stock(order: &OrderPlaced) -> Self {
        Self::LowStockOf(
            order
                .lines
                .first()
                .map(|line| line.sku.clone())
                .unwrap_or_default(),
        )
    }

    /// The order stage's holds for an order: its lines' units added up per SKU.
    fn holds(order: &OrderPlaced) -> Self {
        let mut units = BTreeMap::new();
        for line in &order.lines {
            *units.entry(line.sku.clone()).or_insert(0) += line.quantity;
        }
        Self::Holds(units)
    }
}

/// Frames events as records of their topics, numbering offsets per topic.
#[derive(Debug, Default)]
struct Records {
    offsets: BTreeMap<Topic, i64>,
}

impl Records {
    fn record(
        &mut self,
        codec: &Codec,
        event: Event,
        timestamp: Timestamp,
        traceparent: Option<Vec<u8>>,
        expect: Expect,
    ) -> anyhow::Result<Record> {
        let payload = codec
            .encode_to_vec(&event)
            .with_context(|| format!("encoding a {}", event.name()))?;
        let offset = self.offsets.entry(event.topic()).or_insert(0);
        let record = Record {
            topic: event.topic().name().to_owned(),
            key: event.key().to_owned(),
            offset: *offset,
            timestamp,
            traceparent,
            payload,
            event,
            expect,
        };
        *offset += 1;
        Ok(record)
    }
}

/// What processing one record produced, for the harness.
#[derive(Debug, Clone, Copy, Default)]
struct Processed {
    /// Holds the stock stage refused (the order is then released, not shipped).
    refused_holds: usize,
}

/// One way of processing a record.
trait RecordPath {
    /// Processes a record; with a verifier, has each step's results checked.
    fn process(
        &mut self,
        record: &Record,
        verifier: Option<&mut Verifier<'_>>,
    ) -> anyhow::Result<Processed>;

    /// The record's offset is committed (the engine's commit callback): its dedup ring entry
    /// may age out.
    fn committed(&mut self, record: &Record) {
        let _ = record;
    }
}

/// The worker's per-record path (see the module docs) around a real handler.
struct WorkerPath<'a, H: Handler> {
    handler: H,
    /// The worker label: output envelopes' `producer`, metric labels.
    label: String,
    codec: &'a Codec,
    runtime: tokio::runtime::Handle,
    telemetry: Telemetry,
    names: TopicNames,
    /// One input partition's state, kept across records.
    store: PartitionStore<H::State>,
    /// Records per batch, and records handled since the last changelog records were taken.
    batch_size: usize,
    in_batch: usize,
    /// The reused output buffer.
    payload: Vec<u8>,
}

impl<'a, H: Handler> WorkerPath<'a, H> {
    fn new(handler: H, label: &str, replay: &Replay<'a>) -> Self {
        Self {
            handler,
            label: label.to_owned(),
            codec: replay.codec,
            runtime: replay.runtime.clone(),
            telemetry: Telemetry::new(label),
            names: TopicNames {
                prefix: String::new(),
                group_id: label.to_owned(),
            },
            // The runtime's defaults (`--dedup-retention 1h`, `--dedup-max-per-key 32`).
            store: PartitionStore::new(DedupPolicy::default()),
            batch_size: usize::try_from(replay.options.batch_size).unwrap_or(usize::MAX),
            in_batch: 0,
            payload: Vec::with_capacity(1024),
        }
    }
}

impl<H: Handler> RecordPath for WorkerPath<'_, H> {
    fn process(
        &mut self,
        record: &Record,
        mut verifier: Option<&mut Verifier<'_>>,
    ) -> anyhow::Result<Processed> {
        let event = self
            .runtime
            .block_on(self.codec.decode(&record.payload))
            .context("decoding")?;
        if let Some(verifier) = verifier.as_deref_mut() {
            verifier.verify(Check::Decoded {
                record,
                event: &event,
            });
        }
        self.telemetry.consumed(&record.topic, event.name());
        let wall = Timestamp::now();
        let latency_micros = wall
            .as_micros()
            .saturating_sub(event.envelope().occurred_at.as_micros());
        self.telemetry.end_to_end_latency(
            event.name(),
            Duration::from_micros(u64::try_from(latency_micros).unwrap_or(0)),
        );
        let trace = record
            .traceparent
            .as_deref()
            .and_then(TraceParent::parse)
            .unwrap_or_else(|| root_trace(event.envelope()));

        let event_id = event.envelope().event_id;
        let state = if H::STORE.is_some() {
            match self.store.seen(&record.key, event_id) {
                Seen::New(state) => state,
                Seen::Duplicate => bail!("input {event_id} taken for a duplicate"),
            }
        } else {
            None
        };
        // The engine hands each attempt its own copy of the state.
        let mut next = state.clone();
        let mut context = Context::new(event.envelope(), &self.label, record.timestamp);
        let started = Instant::now();
        let handled = self.handler.handle(&event, &mut next, &mut context);
        self.telemetry
            .handler_duration(event.name(), started.elapsed());
        match handled {
            Ok(()) => {}
            Err(HandlerError::Rejected { reason } | HandlerError::Retriable { reason }) => {
                bail!("the handler refused a {}: {reason}", event.name())
            }
        }
        drop(state);
        let outputs = context.into_outputs();
        if let Some(verifier) = verifier.as_deref_mut() {
            verifier.verify(Check::Handled {
                record,
                outputs: &outputs,
            });
        }

        let mut processed = Processed::default();
        for output in &outputs {
            self.codec
                .encode(output, &mut self.payload)
                .context("encoding")?;
            let id = output.envelope().event_id.as_uuid();
            let mut span_seed = [0_u8; 8];
            span_seed.copy_from_slice(&id.as_bytes()[..8]);
            let topic = self.names.of(output.topic());
            let key = output.key().to_owned();
            let headers = vec![
                (
                    TraceParent::HEADER.to_owned(),
                    trace.child(span_seed).to_header().into_bytes(),
                ),
                (
                    EVENT_TYPE_HEADER.to_owned(),
                    output.name().as_bytes().to_vec(),
                ),
            ];
            if let Some(verifier) = verifier.as_deref_mut() {
                verifier.verify(Check::Encoded {
                    event: output,
                    bytes: &self.payload,
                    expected: None,
                });
            }
            self.telemetry.produced(&topic, output.name());
            black_box((&topic, &key, &headers, &self.payload));
            if let Event::SkuHoldAnswered(answer) = output
                && !answer.held
            {
                processed.refused_holds += 1;
            }
        }

        if H::STORE.is_some() {
            let applied = Applied::new(event_id, &record.topic, record.offset, wall);
            let due = next
                .as_ref()
                .and_then(|state| self.handler.timer(state))
                .map(|timer| timer.due);
            let open = next
                .as_ref()
                .and_then(|state| self.handler.open_since(state));
            self.store.schedule(&record.key, due);
            self.store.track_open(&record.key, open);
            self.store.apply(&record.key, next, applied);
            self.in_batch += 1;
            if self.in_batch == self.batch_size {
                // The batch ends: one changelog record per key it changed.
                self.in_batch = 0;
                let changelog = self.store.take_changes();
                if let Some(verifier) = verifier {
                    for record in &changelog {
                        verifier.verify(Check::Changelog {
                            bytes: record.value.as_ref().map_or(0, Vec::len),
                        });
                    }
                }
                black_box(&changelog);
            }
        }
        black_box(&outputs);
        Ok(processed)
    }

    fn committed(&mut self, record: &Record) {
        self.store.committed(&record.topic, record.offset + 1);
    }
}

/// The trace of an input without a carried trace context, rooted at its event id (as the
/// engine's `root_trace`).
fn root_trace(envelope: &Envelope) -> TraceParent {
    let bytes = *envelope.event_id.as_uuid().as_bytes();
    let mut span = [0_u8; 8];
    span.copy_from_slice(&bytes[8..]);
    TraceParent::root(bytes, span)
}

/// The codec alone, one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodecStep {
    /// Framed bytes to an event.
    Decode,
    /// The (already decoded) event to framed bytes.
    Encode,
}

/// Decoding or encoding only: the codec's own cost. Decoding is polled once, without the
/// runtime handle's `block_on` the worker path goes through.
struct CodecPath<'a> {
    codec: &'a Codec,
    step: CodecStep,
    payload: Vec<u8>,
}

impl<'a> CodecPath<'a> {
    fn new(codec: &'a Codec, step: CodecStep) -> Self {
        Self {
            codec,
            step,
            payload: Vec::with_capacity(1024),
        }
    }
}

impl RecordPath for CodecPath<'_> {
    fn process(
        &mut self,
        record: &Record,
        verifier: Option<&mut Verifier<'_>>,
    ) -> anyhow::Result<Processed> {
        match self.step {
            CodecStep::Decode => {
                let event = ready(self.codec.decode(&record.payload))
                    .context("the offline codec waited")?
                    .context("decoding")?;
                if let Some(verifier) = verifier {
                    verifier.verify(Check::Decoded {
                        record,
                        event: &event,
                    });
                }
                black_box(&event);
            }
            CodecStep::Encode => {
                self.codec
                    .encode(&record.event, &mut self.payload)
                    .context("encoding")?;
                if let Some(verifier) = verifier {
                    verifier.verify(Check::Encoded {
                        event: &record.event,
                        bytes: &self.payload,
                        expected: Some(&record.payload),
                    });
                }
                black_box(&self.payload);
            }
        }
        Ok(Processed::default())
    }
}

/// The no-op hop's handler (like `retail_bench::arms::NoOp`), extended to restocks: one `LowStock` per input.
#[derive(Debug)]
struct NoOp;

impl Handler for NoOp {
    type State = ();
    const STORE: Option<&'static str> = None;

    fn inputs(&self) -> Vec<Topic> {
        vec![Topic::WarehouseStockAdjustments, Topic::StorefrontOrders]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::InventoryStockLevels]
    }

    fn handle(
        &self,
        event: &Event,
        _state: &mut Option<()>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let (sku, available) = match event {
            Event::StockAdjusted(adjusted) => (&adjusted.sku, adjusted.quantity_delta),
            Event::OrderPlaced(order) => match order.lines.first() {
                Some(line) => (&line.sku, line.quantity),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        context.emit(LowStock {
            envelope: context.envelope_for::<LowStock>(""),
            sku: sku.clone(),
            available,
            threshold: 0,
        });
        Ok(())
    }
}

/// One check of a measured record's results.
#[derive(Debug)]
enum Check<'a> {
    /// The record decoded to this event.
    Decoded {
        record: &'a Record,
        event: &'a Event,
    },
    /// The handler emitted these events for the record.
    Handled {
        record: &'a Record,
        outputs: &'a [Event],
    },
    /// The event encoded to these bytes (which must be `expected`, if given).
    Encoded {
        event: &'a Event,
        bytes: &'a [u8],
        expected: Option<&'a [u8]>,
    },
    /// The changelog record of the new state has this many bytes.
    Changelog { bytes: usize },
}

/// Checks measured records' results and tallies them; a run with any failed check, or with
/// fewer checks than records, reports no figure.
#[derive(Debug)]
struct Verifier<'a> {
    /// To decode encoded outputs back.
    codec: &'a Codec,
    decoded: usize,
    input_bytes: usize,
    handled: usize,
    outputs: usize,
    encoded: usize,
    output_bytes: usize,
    changelog_records: usize,
    changelog_bytes: usize,
    /// Records per batch (changelog records are taken once per batch).
    batch_size: usize,
    /// Failed checks (the first few are kept).
    failures: Vec<String>,
    failure_count: usize,
}

/// Failed checks whose message is kept.
const KEPT_FAILURES: usize = 5;

impl<'a> Verifier<'a> {
    fn new(codec: &'a Codec, batch_size: u64) -> Self {
        Self {
            codec,
            batch_size: usize::try_from(batch_size).unwrap_or(usize::MAX),
            decoded: 0,
            input_bytes: 0,
            handled: 0,
            outputs: 0,
            encoded: 0,
            output_bytes: 0,
            changelog_records: 0,
            changelog_bytes: 0,
            failures: Vec::new(),
            failure_count: 0,
        }
    }

    /// Checks one step's results. Callgrind does not count what runs in here (see
    /// [`measured_record`]); `inline(never)` keeps the symbol it looks for.
    #[inline(never)]
    fn verify(&mut self, check: Check<'_>) {
        if let Err(failure) = self.check(check) {
            self.failure_count += 1;
            if self.failures.len() < KEPT_FAILURES {
                self.failures.push(failure);
            }
        }
    }

    fn check(&mut self, check: Check<'_>) -> Result<(), String> {
        match check {
            Check::Decoded { record, event } => {
                self.decoded += 1;
                self.input_bytes += record.payload.len();
                if *event != record.event {
                    return Err(format!(
                        "record {} of {} decoded to another event",
                        record.offset, record.topic
                    ));
                }
            }
            Check::Handled { record, outputs } => {
                self.handled += 1;
                self.outputs += outputs.len();
                check_outputs(record, outputs)?;
            }
            Check::Encoded {
                event,
                bytes,
                expected,
            } => {
                self.encoded += 1;
                self.output_bytes += bytes.len();
                if let Some(expected) = expected
                    && bytes != expected
                {
                    return Err(format!("a {} encoded to other bytes", event.name()));
                }
                let decoded = ready(self.codec.decode(bytes))
                    .ok_or("the offline codec waited")?
                    .map_err(|error| {
                        format!("an encoded {} does not decode: {error}", event.name())
                    })?;
                if decoded != *event {
                    return Err(format!(
                        "an encoded {} decodes to another event",
                        event.name()
                    ));
                }
            }
            Check::Changelog { bytes } => {
                self.changelog_records += 1;
                self.changelog_bytes += bytes;
                if bytes == 0 {
                    return Err("an empty changelog record".to_owned());
                }
            }
        }
        Ok(())
    }

    /// The run's summary, if every check passed and every measured record was checked.
    fn finish(self, path: ReplayPath, measured: usize) -> anyhow::Result<String> {
        if self.failure_count > 0 {
            bail!(
                "{} failed checks on the {} path, e.g.: {}",
                self.failure_count,
                path.name(),
                self.failures.join("; ")
            );
        }
        let (decodes, handles) = match path {
            ReplayPath::NoopAdjusted
            | ReplayPath::NoopOrder
            | ReplayPath::OrderStage
            | ReplayPath::StockHold => (measured, measured),
            ReplayPath::DecodeOrder => (measured, 0),
            ReplayPath::EncodeOrder => (0, 0),
        };
        // Changelog records are taken per batch, one per key the batch changed: every order
        // is its own key; holds of one SKU in a batch make one record.
        let batches = measured / self.batch_size;
        let changelogs_add_up = match path {
            ReplayPath::OrderStage => self.changelog_records == batches * self.batch_size,
            // A batch also holds unmeasured restocks, shipments and releases, whose keys it
            // writes too: at least one record per batch that ended.
            ReplayPath::StockHold => self.changelog_records >= batches.min(1),
            _ => self.changelog_records == 0,
        };
        let encodes = match path {
            ReplayPath::EncodeOrder => measured,
            _ => self.outputs,
        };
        ensure!(
            self.decoded == decodes
                && self.handled == handles
                && self.encoded == encodes
                && changelogs_add_up,
            "checks do not add up for {measured} records: {} decoded, {} handled, {} encoded \
             ({} outputs), {} changelog records",
            self.decoded,
            self.handled,
            self.encoded,
            self.outputs,
            self.changelog_records
        );
        ensure!(
            path != ReplayPath::EncodeOrder || self.output_bytes > 0,
            "nothing was encoded"
        );
        // Encoding only: the input is the event, its size the framed bytes it encodes to.
        let input_bytes = match path {
            ReplayPath::EncodeOrder => self.output_bytes,
            _ => self.input_bytes,
        };
        Ok(format!(
            "path={} events={measured} input_bytes={input_bytes} outputs={} output_bytes={} \
             changelog_bytes={}",
            path.name(),
            self.outputs,
            self.output_bytes,
            self.changelog_bytes
        ))
    }
}

/// Checks a handler's outputs against what the record expects.
fn check_outputs(record: &Record, outputs: &[Event]) -> Result<(), String> {
    let wrong = |what: &str| {
        Err(format!(
            "record {} of {}: {what}; got {:?}",
            record.offset,
            record.topic,
            outputs.iter().map(Event::name).collect::<Vec<_>>()
        ))
    };
    match &record.expect {
        Expect::CodecOnly => wrong("no handler runs on a codec-only path"),
        Expect::Unmeasured => wrong("a record that sets the scene was checked"),
        Expect::LowStockOf(sku) => match outputs {
            [Event::LowStock(low)] if low.sku == *sku => Ok(()),
            _ => wrong(&format!("expected one LowStock of {sku}")),
        },
        Expect::Holds(units) => {
            let Event::OrderPlaced(order) = &record.event else {
                return wrong("holds expected for a record that is no order");
            };
            let mut held = BTreeMap::new();
            for output in outputs {
                match output {
                    Event::SkuCommand(command)
                        if command.kind == SkuCommandKind::Hold
                            && command.order_id == order.order_id =>
                    {
                        if held.insert(command.sku.clone(), command.quantity).is_some() {
                            return wrong(&format!("two holds of {}", command.sku));
                        }
                    }
                    _ => return wrong("only holds of the order expected"),
                }
            }
            if held == *units {
                Ok(())
            } else {
                wrong(&format!("holds {held:?} instead of {units:?}"))
            }
        }
        Expect::HoldAnswer => {
            let Event::SkuCommand(command) = &record.event else {
                return wrong("an answer expected for a record that is no SKU command");
            };
            let answers = outputs
                .iter()
                .filter(|output| {
                    matches!(output, Event::SkuHoldAnswered(answer)
                        if answer.order_id == command.order_id
                            && answer.sku == command.sku
                            && answer.requested == command.quantity)
                })
                .count();
            let low = outputs
                .iter()
                .filter(|output| matches!(output, Event::LowStock(low) if low.sku == command.sku))
                .count();
            if answers == 1 && low <= 1 && answers + low == outputs.len() {
                Ok(())
            } else {
                wrong("expected one answer to the hold and at most one LowStock")
            }
        }
    }
}

/// Orders from the simulator's generator, in plans of [`CHUNK_ORDERS`] with consecutive seeds.
struct SimulatedOrders {
    settings: PlanSettings,
    seed: u64,
    chunk: u64,
}

/// One plan's orders and the warehouse's stock for them.
struct SimulatedChunk {
    /// The orders, each with its placement time.
    orders: Vec<(OrderPlaced, Timestamp)>,
    /// The plan's initial stock, reported when the plan starts.
    restocks: Vec<(StockAdjusted, Timestamp)>,
}

impl SimulatedOrders {
    /// The simulator's defaults (its flags and their environment variables), with `seed`.
    fn new(seed: u64) -> anyhow::Result<Self> {
        let config = retail_simulator::Config::try_parse_from([
            "simulator",
            "--orders",
            &CHUNK_ORDERS.to_string(),
        ])
        .context("the simulator's settings")?;
        let settings = config.validate().context("the simulator's settings")?;
        Ok(Self {
            settings,
            seed,
            chunk: 0,
        })
    }

    fn next_chunk(&mut self) -> SimulatedChunk {
        let plan = generate(&self.settings, self.seed.wrapping_add(self.chunk));
        let plan_length =
            Duration::from_secs_f64(CHUNK_ORDERS as f64 / self.settings.rate_per_second);
        let start = Timestamp::from_micros(START_MICROS)
            .plus(plan_length.saturating_mul(u32::try_from(self.chunk).unwrap_or(u32::MAX)));
        self.chunk += 1;
        SimulatedChunk {
            orders: plan
                .orders
                .iter()
                .map(|order| (order.order_placed(start), order.placed_at(start)))
                .collect(),
            restocks: plan
                .skus
                .iter()
                .filter_map(|sku| sku.initial_adjustment(start))
                .map(|adjusted| (adjusted, start))
                .collect(),
        }
    }
}

/// One run's settings and shared parts.
struct Replay<'a> {
    options: &'a Options,
    codec: &'a Codec,
    runtime: tokio::runtime::Handle,
    /// Records to measure.
    events: usize,
}

impl Replay<'_> {
    /// The no-op input: restocks of 1 unit of 500 SKUs in turn.
    fn noop_adjusted(&self, verifier: &mut Verifier<'_>) -> anyhow::Result<usize> {
        let mut path = WorkerPath::new(NoOp, "bench-noop", self);
        let mut records = Records::default();
        let root = EventId::from_u128(u128::from(self.options.seed));
        for number in 0..self.events {
            let at = Timestamp::from_micros(START_MICROS).plus(Duration::from_millis(
                u64::try_from(number).unwrap_or(u64::MAX),
            ));
            let adjustment_id = format!("adj-{number}");
            let sku = format!("sku-{}", number % 500);
            let mut envelope =
                Envelope::originating::<StockAdjusted>(adjustment_id.clone(), BENCH_PRODUCER, at);
            envelope.event_id = EventId::derived(root, "StockAdjusted", &adjustment_id);
            let event = Event::StockAdjusted(StockAdjusted {
                envelope,
                adjustment_id,
                warehouse_id: "w1".into(),
                sku: sku.clone(),
                quantity_delta: 1,
                reason: StockAdjustmentReason::Restock,
            });
            let record = records.record(self.codec, event, at, None, Expect::LowStockOf(sku))?;
            measured_record(&mut path, &record, verifier)?;
        }
        Ok(self.events)
    }

    /// The simulator's orders, one record each, through `path`.
    fn orders(
        &self,
        mut path: impl RecordPath,
        expect: impl Fn(&OrderPlaced) -> Expect,
        verifier: &mut Verifier<'_>,
    ) -> anyhow::Result<usize> {
        let mut simulated = SimulatedOrders::new(self.options.seed)?;
        let mut records = Records::default();
        let mut measured = 0;
        while measured < self.events {
            for (order, at) in simulated.next_chunk().orders {
                if measured == self.events {
                    break;
                }
                let expected = expect(&order);
                let record = records.record(
                    self.codec,
                    Event::OrderPlaced(order),
                    at,
                    // The storefront writes no trace context.
                    None,
                    expected,
                )?;
                measured_record(&mut path, &record, verifier)?;
                path.committed(&record);
                measured += 1;
            }
        }
        Ok(measured)
    }

    /// The stock stage on the holds the order stage sends for the simulator's orders, after a
    /// warm-up, with orders shipped or released as they complete (see the module docs).
    fn stock_holds(&self, verifier: &mut Verifier<'_>) -> anyhow::Result<usize> {
        const ORDER_STAGE: &str = "inventory.orders";
        let inventory = &self.options.inventory;
        let mut path = WorkerPath::new(StockStage::new(inventory), "inventory.stock", self);
        let order_stage = OrderStage::new(inventory);
        let in_flight_limit = usize::try_from(self.options.orders_in_flight).unwrap_or(usize::MAX);
        let mut simulated = SimulatedOrders::new(self.options.seed)?;
        let mut records = Records::default();
        // Orders placed and not yet shipped or released: the order, whether a hold was refused.
        let mut in_flight: VecDeque<(OrderPlaced, bool)> = VecDeque::new();
        let mut placed = 0;
        let mut measured = 0;
        while measured < self.events {
            let chunk = simulated.next_chunk();
            for (restock, at) in chunk.restocks {
                let record = records.record(
                    self.codec,
                    Event::StockAdjusted(restock),
                    at,
                    None,
                    Expect::Unmeasured,
                )?;
                path.process(&record, None)?;
                path.committed(&record);
            }
            for (order, at) in chunk.orders {
                if measured == self.events {
                    break;
                }
                let warming_up = placed < self.options.warm_up_orders;
                placed += 1;
                let order_event = Event::OrderPlaced(order.clone());
                let mut context = Context::new(order_event.envelope(), ORDER_STAGE, at);
                order_stage
                    .handle(&order_event, &mut None, &mut context)
                    .map_err(|error| {
                        anyhow::anyhow!("the order stage refused an order: {error}")
                    })?;
                let trace = root_trace(order_event.envelope());
                let mut refused = false;
                for hold in context.into_outputs() {
                    if !warming_up && measured == self.events {
                        break;
                    }
                    let id = hold.envelope().event_id.as_uuid();
                    let mut span_seed = [0_u8; 8];
                    span_seed.copy_from_slice(&id.as_bytes()[..8]);
                    let traceparent = trace.child(span_seed).to_header().into_bytes();
                    let record = records.record(
                        self.codec,
                        hold,
                        at,
                        Some(traceparent),
                        Expect::HoldAnswer,
                    )?;
                    let processed = if warming_up {
                        path.process(&record, None)?
                    } else {
                        measured += 1;
                        measured_record(&mut path, &record, verifier)?
                    };
                    path.committed(&record);
                    refused |= processed.refused_holds > 0;
                }
                in_flight.push_back((order, refused));
                while in_flight.len() > in_flight_limit {
                    let Some((done, refused)) = in_flight.pop_front() else {
                        break;
                    };
                    // What the order stage then sends: a shipment's units, or a release of what
                    // a rejected order held.
                    let kind = if refused {
                        SkuCommandKind::Release
                    } else {
                        SkuCommandKind::Ship
                    };
                    let Expect::Holds(units) = Expect::holds(&done) else {
                        continue;
                    };
                    for (sku, quantity) in units {
                        let tag = if refused { "release" } else { "ship" };
                        let command = Event::SkuCommand(SkuCommand {
                            envelope: Envelope::caused_by::<SkuCommand>(
                                &done.envelope,
                                &format!("{tag}:{sku}"),
                                ORDER_STAGE,
                                at,
                            ),
                            sku,
                            order_id: done.order_id.clone(),
                            kind,
                            quantity,
                        });
                        let record =
                            records.record(self.codec, command, at, None, Expect::Unmeasured)?;
                        path.process(&record, None)?;
                        path.committed(&record);
                    }
                }
            }
        }
        Ok(measured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(path: ReplayPath, events: u64) -> Options {
        Options::try_parse_from([
            "replay",
            "--path",
            path.name(),
            "--events",
            &events.to_string(),
            "--warm-up-orders",
            "200",
            "--batch-size",
            "10",
        ])
        .expect("options")
    }

    fn replay(path: ReplayPath, events: u64) -> anyhow::Result<String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let options = options(path, events);
        let codec = offline_codec();
        let mut verifier = Verifier::new(&codec, options.batch_size);
        let replay = Replay {
            options: &options,
            codec: &codec,
            runtime: runtime.handle().clone(),
            events: usize::try_from(events).expect("small"),
        };
        let measured = run(&replay, &mut verifier)?;
        verifier.finish(path, measured)
    }

    #[test]
    fn callgrind_toggles_on_the_functions_the_instructions_subcommand_names() {
        assert_eq!(
            std::any::type_name_of_val(&measured_record),
            replay_paths::MEASURED_FUNCTION
        );
        // Callgrind's names carry no lifetimes.
        assert_eq!(
            std::any::type_name_of_val(&Verifier::verify).replace("<'_>", ""),
            replay_paths::CHECK_FUNCTION
        );
    }

    #[test]
    fn every_path_replays_and_checks_every_record() {
        for path in ReplayPath::ALL {
            let summary = replay(path, 60).unwrap_or_else(|error| panic!("{path:?}: {error:#}"));
            assert!(
                summary.starts_with(&format!("path={} events=60 ", path.name())),
                "{summary}"
            );
        }
    }

    #[test]
    fn the_order_stage_sends_one_hold_per_sku_and_writes_the_changelog() {
        let summary = replay(ReplayPath::OrderStage, 100).expect("replays");
        let value = |key: &str| {
            summary
                .split_whitespace()
                .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{key} in {summary}"))
        };
        // Orders have 1 to 4 lines of distinct SKUs.
        assert!((100..=400).contains(&value("outputs")), "{summary}");
        assert!(value("changelog_bytes") > 0, "{summary}");
        assert!(value("input_bytes") > 100 * 100, "{summary}");
    }

    #[test]
    fn a_record_that_decodes_to_another_event_fails_the_run() {
        let codec = offline_codec();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let options = options(ReplayPath::NoopAdjusted, 1);
        let replay = Replay {
            options: &options,
            codec: &codec,
            runtime: runtime.handle().clone(),
            events: 1,
        };
        let mut records = Records::default();
        let at = Timestamp::from_micros(START_MICROS);
        let adjusted = |sku: &str| StockAdjusted {
            envelope: Envelope::originating::<StockAdjusted>("adj-1", BENCH_PRODUCER, at),
            adjustment_id: "adj-1".into(),
            warehouse_id: "w1".into(),
            sku: sku.into(),
            quantity_delta: 1,
            reason: StockAdjustmentReason::Restock,
        };
        let mut record = records
            .record(
                &codec,
                Event::StockAdjusted(adjusted("a")),
                at,
                None,
                Expect::LowStockOf("a".into()),
            )
            .expect("record");
        // The payload says SKU "b": decoding it cannot give the record's event.
        record.payload = codec
            .encode_to_vec(&Event::StockAdjusted(adjusted("b")))
            .expect("encodes");
        let mut path = WorkerPath::new(NoOp, "bench-noop", &replay);
        let mut verifier = Verifier::new(&codec, 500);
        measured_record(&mut path, &record, &mut verifier).expect("processed");
        let error = verifier
            .finish(ReplayPath::NoopAdjusted, 1)
            .expect_err("a wrong decoding fails the run");
        let message = error.to_string();
        assert!(message.contains("decoded to another event"), "{message}");
        // And an output of the wrong SKU, too.
        assert!(message.contains("expected one LowStock of a"), "{message}");
    }

    #[test]
    fn fewer_checks_than_records_fail_the_run() {
        let codec = offline_codec();
        let verifier = Verifier::new(&codec, 500);
        let error = verifier
            .finish(ReplayPath::DecodeOrder, 3)
            .expect_err("nothing was checked");
        assert!(error.to_string().contains("do not add up"), "{error}");
    }
}
