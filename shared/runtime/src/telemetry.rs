//! Telemetry: every metric the runtime emits, named and described in one place, and logging
//! setup.
//!
//! Metric names follow vector's instrumentation spec: `worker_<noun>_<unit>[_total]`, counters
//! end in `_total`, durations are histograms in seconds. Labels are bounded: `worker`, `topic`,
//! `partition`, `event_type`, `error_class`, `outcome`, `kind`, `store`; never a key, an order
//! id or an event id, which would give Prometheus one series per order.
//!
//! [`METRICS`] lists them all with type, labels and meaning; a test checks that the list and what
//! [`Telemetry`] actually records agree.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The log filter when `RUST_LOG` is unset: librdkafka is chatty at info about things the
/// runtime already reports (rebalances, reconnects).
const DEFAULT_LOG_FILTER: &str = "info,librdkafka=warn,rdkafka=warn";

/// Histogram bucket bounds for every `*_seconds` metric: from half a millisecond (one handler
/// call) to ten seconds (a slow restore or a retry-laden record).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One metric: what the docs and the on-call engineer need to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// The Prometheus name.
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Its label names, in the order they are recorded.
    pub labels: &'static [&'static str],
    /// What it means, for `# HELP` and the docs.
    pub description: &'static str,
}

const RECORDS_CONSUMED: &str = "worker_records_consumed_total";
const RECORDS_PRODUCED: &str = "worker_records_produced_total";
const HANDLER_DURATION: &str = "worker_handler_duration_seconds";
const END_TO_END_LATENCY: &str = "worker_end_to_end_latency_seconds";
const DEAD_LETTERED: &str = "worker_dead_lettered_records_total";
const RETRIES: &str = "worker_retries_total";
const DUPLICATES_SKIPPED: &str = "worker_duplicates_skipped_total";
const REBALANCES: &str = "worker_rebalances_total";
const COMMIT_DURATION: &str = "worker_commit_duration_seconds";
const COMMITS: &str = "worker_commits_total";
const TRANSACTION_DURATION: &str = "worker_transaction_duration_seconds";
const STATE_ENTRIES: &str = "worker_state_entries";
const STATE_RESTORE_DURATION: &str = "worker_state_restore_duration_seconds";
const STATE_RESTORED_RECORDS: &str = "worker_state_restored_records_total";
const STATE_RESTORED_BYTES: &str = "worker_state_restored_bytes_total";
const ASSIGNED_PARTITIONS: &str = "worker_assigned_partitions";
const IN_FLIGHT_RECORDS: &str = "worker_in_flight_records";
const CONSUMER_LAG: &str = "worker_consumer_lag_records";
const FATAL_ERRORS: &str = "worker_fatal_errors_total";
const TIMERS_FIRED: &str = "worker_timers_fired_total";
const OPEN_ITEMS: &str = "worker_open_items";
const OLDEST_OPEN_ITEM_AGE: &str = "worker_oldest_open_item_age_seconds";
const READY: &str = "worker_ready";
const START_TIME: &str = "worker_start_time_seconds";

/// [`MetricInfo::kind`] of a counter.
pub const COUNTER: &str = "counter";
/// [`MetricInfo::kind`] of a gauge.
pub const GAUGE: &str = "gauge";
/// [`MetricInfo::kind`] of a histogram.
pub const HISTOGRAM: &str = "histogram";

/// Every metric name with its type, labels and meaning, for the docs and the metrics-catalogue
/// test.
pub const METRICS: &[MetricInfo] = &[
    MetricInfo {
        name: RECORDS_CONSUMED,
        kind: COUNTER,
        labels: &["worker", "topic", "event_type"],
        description: "Input records handed to the handler. Flat while lag grows: the worker is stuck or not assigned.",
    },
    MetricInfo {
        name: RECORDS_PRODUCED,
        kind: COUNTER,
        labels: &["worker", "topic", "event_type"],
        description: "Output records acknowledged by the broker (events, not changelog or dead letters).",
    },
    MetricInfo {
        name: HANDLER_DURATION,
        kind: HISTOGRAM,
        labels: &["worker", "event_type"],
        description: "Time the handler spent on one event, retries excluded. Rising: the business logic or what it calls got slower.",
    },
    MetricInfo {
        name: END_TO_END_LATENCY,
        kind: HISTOGRAM,
        labels: &["worker", "event_type"],
        description: "Time from the input event's occurred_at to its outputs being durable. Rising with flat handler time: lag or a slow upstream.",
    },
    MetricInfo {
        name: DEAD_LETTERED,
        kind: COUNTER,
        labels: &["worker", "topic", "error_class"],
        description: "Input records sent to the dead-letter topic instead of being handled. Any increase needs a look at the dead-letter topic.",
    },
    MetricInfo {
        name: RETRIES,
        kind: COUNTER,
        labels: &["worker", "error_class"],
        description: "Retries of a record after a retriable failure. A steady rate: a dependency is failing.",
    },
    MetricInfo {
        name: DUPLICATES_SKIPPED,
        kind: COUNTER,
        labels: &["worker", "topic"],
        description: "Re-delivered input records recognised by event id and not handled again (their outputs were re-sent). Spikes follow restarts and rebalances.",
    },
    MetricInfo {
        name: REBALANCES,
        kind: COUNTER,
        labels: &["worker", "kind"],
        description: "Consumer group rebalance events by kind (assign, revoke, error). Frequent: members keep joining and leaving (crash loop, poll interval exceeded).",
    },
    MetricInfo {
        name: COMMIT_DURATION,
        kind: HISTOGRAM,
        labels: &["worker", "outcome"],
        description: "Duration of a blocking offset commit (on revoke and at shutdown) by outcome (ok, error). Slow: rebalances and shutdowns wait for it.",
    },
    MetricInfo {
        name: COMMITS,
        kind: COUNTER,
        labels: &["worker", "outcome"],
        description: "Offset commits by outcome (ok, error): the periodic background commits and the blocking ones. Errors: offsets are not moving and records will be re-delivered after a restart.",
    },
    MetricInfo {
        name: TRANSACTION_DURATION,
        kind: HISTOGRAM,
        labels: &["worker", "outcome"],
        description: "Duration of a producer transaction by outcome (commit, abort), exactly-once mode only. Aborts: the batch is re-processed.",
    },
    MetricInfo {
        name: STATE_ENTRIES,
        kind: GAUGE,
        labels: &["worker", "store", "partition"],
        description: "Keys held in a state store partition in memory. Unbounded growth: state is never deleted.",
    },
    MetricInfo {
        name: STATE_RESTORE_DURATION,
        kind: HISTOGRAM,
        labels: &["worker", "store"],
        description: "Time to restore a state store partition from its changelog after an assignment; the partition is not processed meanwhile.",
    },
    MetricInfo {
        name: STATE_RESTORED_RECORDS,
        kind: COUNTER,
        labels: &["worker", "store"],
        description: "Changelog records read while restoring state. Large per restore: the changelog is not being compacted.",
    },
    MetricInfo {
        name: STATE_RESTORED_BYTES,
        kind: COUNTER,
        labels: &["worker", "store"],
        description: "Changelog bytes read while restoring state.",
    },
    MetricInfo {
        name: ASSIGNED_PARTITIONS,
        kind: GAUGE,
        labels: &["worker"],
        description: "Input partitions currently assigned to this instance. Zero on every instance: nothing is being processed.",
    },
    MetricInfo {
        name: IN_FLIGHT_RECORDS,
        kind: GAUGE,
        labels: &["worker"],
        description: "Input records handled whose outputs are not yet acknowledged. Stuck at the limit: the broker is not acknowledging produces.",
    },
    MetricInfo {
        name: CONSUMER_LAG,
        kind: GAUGE,
        labels: &["worker", "topic", "partition"],
        description: "Records between the committed offset and the end of an assigned partition, from librdkafka statistics. Growing: the worker falls behind.",
    },
    MetricInfo {
        name: TIMERS_FIRED,
        kind: COUNTER,
        labels: &["worker", "outcome"],
        description: "State timers fired (deadlines, pick-and-pack times, retention) by outcome (ok, error). Errors: the handler failed on a timer, which is tried again a second later.",
    },
    MetricInfo {
        name: OPEN_ITEMS,
        kind: GAUGE,
        labels: &["worker"],
        description: "Keys of the assigned partitions whose work is open (fulfilment: orders waiting for their answers or being packed; notification: orders whose messages wait for the order's contact). The saga's work in flight.",
    },
    MetricInfo {
        name: OLDEST_OPEN_ITEM_AGE,
        kind: GAUGE,
        labels: &["worker"],
        description: "Age of the oldest open key of the assigned partitions, from the event time its work opened; 0 when nothing is open. Growing steadily: work is stuck (a missing answer, a stalled upstream).",
    },
    MetricInfo {
        name: START_TIME,
        kind: GAUGE,
        labels: &["worker"],
        description: "When the process started, in seconds since the Unix epoch (per process, worker label without a stage). `changes(...)` over a window counts restarts: a crash loop.",
    },
    MetricInfo {
        name: READY,
        kind: GAUGE,
        labels: &["worker"],
        description: "1 while the process is ready (every stage's partitions restored and processing, registry reachable, not draining), else 0; the same as /readyz, per process (worker label without a stage).",
    },
    MetricInfo {
        name: FATAL_ERRORS,
        kind: COUNTER,
        labels: &["worker", "error_class"],
        description: "Errors that make the worker exit so it is restarted (fenced producer, fatal librdkafka error).",
    },
];

/// Why the metrics recorder could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The Prometheus recorder's configuration was rejected.
    #[error("cannot build the prometheus recorder: {0}")]
    Prometheus(#[from] BuildError),
}

/// Sets up logging to stdout: plain text or one JSON object per line, filtered by `RUST_LOG`
/// (default `info,librdkafka=warn,rdkafka=warn`). Colours only on a terminal, so log collectors
/// get no escape codes. Also routes the `log` records of rdkafka into `tracing`.
///
/// Calling it again (several runtimes in one test process) keeps the first setup.
pub fn init_logging(format: LogFormat, worker: &str) {
    let (filter, bad_filter) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some(error)),
    };
    let ansi = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    // The error only says a subscriber is already installed, which is the case this ignores.
    let _already_initialised = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    // An unset RUST_LOG is the normal case; only a malformed one is worth a warning.
    if let Some(error) = bad_filter.filter(|_| std::env::var_os(EnvFilter::DEFAULT_ENV).is_some()) {
        tracing::warn!(%error, default = DEFAULT_LOG_FILTER, "ignoring malformed RUST_LOG");
    }
    tracing::debug!(worker, ?format, "logging initialised");
}

/// The recorder's configuration: bucketed histograms for every `*_seconds` metric.
fn prometheus_builder() -> Result<PrometheusBuilder, TelemetryError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?)
}

/// Installs the Prometheus recorder as the process's global metrics recorder and returns a
/// handle to render it (see [`crate::http::serve`], which also runs its upkeep).
///
/// Idempotent: tests start several runtimes in one process, so a second call returns the first
/// recorder's handle. If some other recorder was installed first, the returned handle renders
/// nothing (a warning is logged) rather than failing the worker.
pub fn install_prometheus() -> Result<PrometheusHandle, TelemetryError> {
    // A Mutex rather than a OnceLock: building can fail, and two racing first calls must not
    // both try to install.
    static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = prometheus_builder()?.build_recorder();
    let handle = recorder.handle();
    if let Err(error) = metrics::set_global_recorder(recorder) {
        tracing::warn!(%error, "another metrics recorder is installed: /metrics will be empty");
    }
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Per-worker telemetry: every metric the runtime emits goes through one method here; the
/// `worker` label is fixed at construction.
///
/// Records into whichever recorder is current: the global one in a worker, a local one in tests.
/// The series touched for every record keep their handles, taken from the recorder current at
/// their first use.
#[derive(Debug, Clone)]
pub struct Telemetry {
    /// The worker's name: the `worker` label on every series, so one Prometheus serves all the
    /// saga's workers.
    worker: Arc<str>,
    /// Handles of the per-record series.
    hot: Arc<Mutex<HotSeries>>,
}

/// Handles of the series every record touches, by their label values. Looking a series up in
/// the recorder builds a label vector and hashes it in the registry on every call (a seventh of
/// a no-op hop's instructions); a kept handle is one atomic add or a histogram sample. The
/// label values are topics and event types, as bounded as the series themselves.
#[derive(Debug, Default)]
struct HotSeries {
    /// By topic, then event type.
    consumed: HashMap<String, HashMap<String, metrics::Counter>>,
    produced: HashMap<String, HashMap<String, metrics::Counter>>,
    /// By event type.
    handler_duration: HashMap<String, metrics::Histogram>,
    end_to_end_latency: HashMap<String, metrics::Histogram>,
}

/// The handle under `key`, made by `make` on first use.
fn kept<'a, T>(map: &'a mut HashMap<String, T>, key: &str, make: impl FnOnce() -> T) -> &'a mut T {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), make());
    }
    map.get_mut(key)
        .unwrap_or_else(|| unreachable!("{key} was just inserted"))
}

impl Telemetry {
    /// Telemetry for `worker`; registers every metric's description and unit with the current
    /// recorder.
    pub fn new(worker: &str) -> Self {
        describe();
        Self {
            worker: Arc::from(worker),
            hot: Arc::default(),
        }
    }

    fn hot(&self) -> std::sync::MutexGuard<'_, HotSeries> {
        self.hot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One input record handed to the handler.
    pub fn consumed(&self, topic: &str, event_type: &str) {
        let mut hot = self.hot();
        let by_type = kept(&mut hot.consumed, topic, HashMap::new);
        kept(by_type, event_type, || {
            metrics::counter!(
                RECORDS_CONSUMED,
                self.labels(&[("topic", topic), ("event_type", event_type)])
            )
        })
        .increment(1);
    }

    /// One output record acknowledged by the broker.
    pub fn produced(&self, topic: &str, event_type: &str) {
        let mut hot = self.hot();
        let by_type = kept(&mut hot.produced, topic, HashMap::new);
        kept(by_type, event_type, || {
            metrics::counter!(
                RECORDS_PRODUCED,
                self.labels(&[("topic", topic), ("event_type", event_type)])
            )
        })
        .increment(1);
    }

    /// Time the handler spent on one event.
    pub fn handler_duration(&self, event_type: &str, elapsed: Duration) {
        kept(&mut self.hot().handler_duration, event_type, || {
            metrics::histogram!(HANDLER_DURATION, self.labels(&[("event_type", event_type)]))
        })
        .record(elapsed.as_secs_f64());
    }

    /// Now minus the input envelope's `occurred_at`, once its outputs are durable.
    pub fn end_to_end_latency(&self, event_type: &str, latency: Duration) {
        kept(&mut self.hot().end_to_end_latency, event_type, || {
            metrics::histogram!(
                END_TO_END_LATENCY,
                self.labels(&[("event_type", event_type)])
            )
        })
        .record(latency.as_secs_f64());
    }

    /// One input record dead-lettered; `error_class` is a fixed word (e.g. `rejected`,
    /// `decode`, `retries_exhausted`), never the error message.
    pub fn dead_lettered(&self, topic: &str, error_class: &str) {
        metrics::counter!(
            DEAD_LETTERED,
            self.labels(&[("topic", topic), ("error_class", error_class)])
        )
        .increment(1);
    }

    /// One retry of a record after a retriable failure.
    pub fn retried(&self, error_class: &str) {
        metrics::counter!(RETRIES, self.labels(&[("error_class", error_class)])).increment(1);
    }

    /// One re-delivered record skipped because its event id was already processed.
    pub fn duplicate_skipped(&self, topic: &str) {
        metrics::counter!(DUPLICATES_SKIPPED, self.labels(&[("topic", topic)])).increment(1);
    }

    /// A state timer fired; `outcome` is `ok` or `error`.
    pub fn timer_fired(&self, outcome: &str) {
        metrics::counter!(TIMERS_FIRED, self.labels(&[("outcome", outcome)])).increment(1);
    }

    /// Keys with open work in the assigned partitions, and the age of the oldest.
    pub fn open_work(&self, count: usize, oldest_age: Duration) {
        metrics::gauge!(OPEN_ITEMS, self.labels(&[])).set(count as f64);
        metrics::gauge!(OLDEST_OPEN_ITEM_AGE, self.labels(&[])).set(oldest_age.as_secs_f64());
    }

    /// The process started at `at`.
    pub fn started(&self, at: std::time::SystemTime) {
        let seconds = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        metrics::gauge!(START_TIME, self.labels(&[])).set(seconds);
    }

    /// Whether the process is ready (set by the HTTP listener at every scrape, from the same
    /// flags as `/readyz`).
    pub fn ready(&self, ready: bool) {
        metrics::gauge!(READY, self.labels(&[])).set(if ready { 1.0 } else { 0.0 });
    }

    /// One rebalance event; `kind` is `assign`, `revoke` or `error`.
    pub fn rebalance(&self, kind: &str) {
        metrics::counter!(REBALANCES, self.labels(&[("kind", kind)])).increment(1);
    }

    /// One blocking offset commit; `outcome` is `ok` or `error`.
    pub fn commit(&self, outcome: &str, elapsed: Duration) {
        metrics::histogram!(COMMIT_DURATION, self.labels(&[("outcome", outcome)]))
            .record(elapsed.as_secs_f64());
    }

    /// The result of an offset commit, background or blocking; `outcome` is `ok` or `error`.
    pub fn committed(&self, outcome: &str) {
        metrics::counter!(COMMITS, self.labels(&[("outcome", outcome)])).increment(1);
    }

    /// One producer transaction; `outcome` is `commit` or `abort`.
    pub fn transaction(&self, outcome: &str, elapsed: Duration) {
        metrics::histogram!(TRANSACTION_DURATION, self.labels(&[("outcome", outcome)]))
            .record(elapsed.as_secs_f64());
    }

    /// Keys currently held by a state store partition.
    pub fn state_entries(&self, store: &str, partition: i32, entries: usize) {
        metrics::gauge!(
            STATE_ENTRIES,
            self.labels(&[("store", store), ("partition", &partition.to_string())])
        )
        .set(entries as f64);
    }

    /// One state store partition restored from its changelog. `partition` is only logged: a
    /// per-partition series of restore durations would mostly hold a single sample.
    pub fn state_restored(
        &self,
        store: &str,
        partition: i32,
        records: u64,
        bytes: u64,
        elapsed: Duration,
    ) {
        tracing::debug!(
            store,
            partition,
            records,
            bytes,
            elapsed_ms = elapsed.as_millis(),
            "state restored"
        );
        metrics::histogram!(STATE_RESTORE_DURATION, self.labels(&[("store", store)]))
            .record(elapsed.as_secs_f64());
        metrics::counter!(STATE_RESTORED_RECORDS, self.labels(&[("store", store)]))
            .increment(records);
        metrics::counter!(STATE_RESTORED_BYTES, self.labels(&[("store", store)])).increment(bytes);
    }

    /// Input partitions currently assigned to this instance.
    pub fn partitions_assigned(&self, count: usize) {
        metrics::gauge!(ASSIGNED_PARTITIONS, self.labels(&[])).set(count as f64);
    }

    /// Records handled whose outputs are not yet acknowledged.
    pub fn in_flight(&self, records: usize) {
        metrics::gauge!(IN_FLIGHT_RECORDS, self.labels(&[])).set(records as f64);
    }

    /// Consumer lag of one assigned partition, in records.
    pub fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag_gauge(topic, partition).set(lag as f64);
    }

    /// A partition was revoked: its lag is another member's to report now. The `metrics` API
    /// cannot drop a series, so it is set to 0, which sums correctly across instances.
    pub fn remove_consumer_lag(&self, topic: &str, partition: i32) {
        self.lag_gauge(topic, partition).set(0.0);
    }

    /// Records consumer lag from a librdkafka statistics report (`statistics.interval.ms`).
    ///
    /// Only partitions with a real id (`>= 0`; librdkafka reports an internal `-1` partition per
    /// topic) and a known lag (`>= 0`; `-1` until an offset is committed or the end offset is
    /// known, and for partitions this consumer does not own) are recorded. A partition whose lag
    /// is unknown keeps its previous value; producers' reports have no lag and record nothing.
    pub fn record_statistics(&self, stats: &rdkafka::Statistics) {
        for (topic_name, topic) in &stats.topics {
            for partition in topic.partitions.values() {
                if partition.partition >= 0 && partition.consumer_lag >= 0 {
                    self.consumer_lag(topic_name, partition.partition, partition.consumer_lag);
                }
            }
        }
    }

    /// An error that makes the worker exit.
    pub fn fatal(&self, error_class: &str) {
        metrics::counter!(FATAL_ERRORS, self.labels(&[("error_class", error_class)])).increment(1);
    }

    /// The `worker` label followed by `extra`: every series carries the worker's name.
    fn labels(&self, extra: &[(&'static str, &str)]) -> Vec<metrics::Label> {
        std::iter::once(metrics::Label::new("worker", Arc::clone(&self.worker)))
            .chain(
                extra
                    .iter()
                    .map(|(key, value)| metrics::Label::new(*key, (*value).to_owned())),
            )
            .collect()
    }

    fn lag_gauge(&self, topic: &str, partition: i32) -> metrics::Gauge {
        metrics::gauge!(
            CONSUMER_LAG,
            self.labels(&[("topic", topic), ("partition", &partition.to_string())])
        )
    }
}

/// Registers every runtime metric's unit and description with the current recorder, so
/// `/metrics` carries `# HELP` lines. Describing twice is harmless.
fn describe() {
    describe_metrics(METRICS);
}

/// Registers `metrics`' units and descriptions with the current recorder: a worker calls it at
/// start-up for its own (domain) metrics, listed like the runtime's [`METRICS`].
pub fn describe_metrics(metrics: &[MetricInfo]) {
    for metric in metrics {
        let unit = unit_of(metric.name);
        match metric.kind {
            COUNTER => metrics::describe_counter!(metric.name, unit, metric.description),
            GAUGE => metrics::describe_gauge!(metric.name, unit, metric.description),
            HISTOGRAM => metrics::describe_histogram!(metric.name, unit, metric.description),
            other => debug_assert!(false, "unknown metric kind {other} for {}", metric.name),
        }
    }
}

/// The unit a metric's name ends with, by the naming convention.
fn unit_of(name: &str) -> Unit {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        Unit::Seconds
    } else if base.ends_with("_bytes") {
        Unit::Bytes
    } else {
        Unit::Count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusRecorder;
    use std::collections::{BTreeMap, BTreeSet};

    fn recorder() -> PrometheusRecorder {
        prometheus_builder()
            .expect("the bucket configuration is valid")
            .build_recorder()
    }

    /// Runs `record` against a fresh local recorder and returns what `/metrics` would show.
    fn render(record: impl FnOnce(&Telemetry)) -> String {
        let recorder = recorder();
        metrics::with_local_recorder(&recorder, || {
            let telemetry = Telemetry::new("inventory");
            record(&telemetry);
        });
        recorder.handle().render()
    }

    fn exercise_everything(telemetry: &Telemetry) {
        let ms = Duration::from_millis;
        telemetry.consumed("orders", "OrderPlaced");
        telemetry.produced("stock", "StockReserved");
        telemetry.handler_duration("OrderPlaced", ms(2));
        telemetry.end_to_end_latency("OrderPlaced", ms(40));
        telemetry.dead_lettered("orders", "rejected");
        telemetry.retried("retriable");
        telemetry.duplicate_skipped("orders");
        telemetry.rebalance("assign");
        telemetry.commit("ok", ms(3));
        telemetry.committed("ok");
        telemetry.transaction("commit", ms(8));
        telemetry.state_entries("reservations", 2, 17);
        telemetry.state_restored("reservations", 2, 100, 4096, ms(120));
        telemetry.partitions_assigned(3);
        telemetry.in_flight(12);
        telemetry.consumer_lag("orders", 2, 5);
        telemetry.timer_fired("ok");
        telemetry.open_work(4, ms(90_000));
        telemetry.ready(true);
        telemetry.started(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        telemetry.fatal("fenced");
    }

    /// Every sample line of a rendering, as (metric name, label name -> value).
    fn samples(rendered: &str) -> Vec<(String, BTreeMap<String, String>)> {
        rendered
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, _value) = line.rsplit_once(' ').expect("sample has a value");
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect("label is key=value");
                        (key.to_owned(), value.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            })
            .collect()
    }

    /// The catalogue entry a sample line belongs to (histograms render as three series).
    fn catalogue_entry(sample_name: &str) -> Option<&'static MetricInfo> {
        METRICS.iter().find(|metric| {
            sample_name == metric.name
                || (metric.kind == HISTOGRAM
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| sample_name == format!("{}{suffix}", metric.name)))
        })
    }

    #[test]
    fn each_method_renders_its_metric_with_its_labels() {
        type Record = fn(&Telemetry);
        let cases: Vec<(Record, &str)> = vec![
            (
                |t| t.consumed("orders", "OrderPlaced"),
                r#"worker_records_consumed_total{worker="inventory",topic="orders",event_type="OrderPlaced"} 1"#,
            ),
            (
                |t| t.produced("stock", "StockReserved"),
                r#"worker_records_produced_total{worker="inventory",topic="stock",event_type="StockReserved"} 1"#,
            ),
            (
                |t| t.handler_duration("OrderPlaced", Duration::from_millis(2)),
                r#"worker_handler_duration_seconds_bucket{worker="inventory",event_type="OrderPlaced",le="0.0025"} 1"#,
            ),
            (
                |t| t.end_to_end_latency("OrderPlaced", Duration::from_millis(40)),
                r#"worker_end_to_end_latency_seconds_count{worker="inventory",event_type="OrderPlaced"} 1"#,
            ),
            (
                |t| t.dead_lettered("orders", "rejected"),
                r#"worker_dead_lettered_records_total{worker="inventory",topic="orders",error_class="rejected"} 1"#,
            ),
            (
                |t| t.retried("retriable"),
                r#"worker_retries_total{worker="inventory",error_class="retriable"} 1"#,
            ),
            (
                |t| t.duplicate_skipped("orders"),
                r#"worker_duplicates_skipped_total{worker="inventory",topic="orders"} 1"#,
            ),
            (
                |t| t.rebalance("revoke"),
                r#"worker_rebalances_total{worker="inventory",kind="revoke"} 1"#,
            ),
            (
                |t| t.commit("error", Duration::from_millis(3)),
                r#"worker_commit_duration_seconds_count{worker="inventory",outcome="error"} 1"#,
            ),
            (
                |t| t.committed("error"),
                r#"worker_commits_total{worker="inventory",outcome="error"} 1"#,
            ),
            (
                |t| t.transaction("abort", Duration::from_millis(8)),
                r#"worker_transaction_duration_seconds_count{worker="inventory",outcome="abort"} 1"#,
            ),
            (
                |t| t.state_entries("reservations", 2, 17),
                r#"worker_state_entries{worker="inventory",store="reservations",partition="2"} 17"#,
            ),
            (
                |t| t.partitions_assigned(3),
                r#"worker_assigned_partitions{worker="inventory"} 3"#,
            ),
            (
                |t| t.in_flight(12),
                r#"worker_in_flight_records{worker="inventory"} 12"#,
            ),
            (
                |t| t.consumer_lag("orders", 4, 99),
                r#"worker_consumer_lag_records{worker="inventory",topic="orders",partition="4"} 99"#,
            ),
            (
                |t| t.open_work(4, Duration::from_secs(90)),
                r#"worker_oldest_open_item_age_seconds{worker="inventory"} 90"#,
            ),
            (
                |t| t.open_work(4, Duration::from_secs(90)),
                r#"worker_open_items{worker="inventory"} 4"#,
            ),
            (
                |t| t.started(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
                r#"worker_start_time_seconds{worker="inventory"} 1700000000"#,
            ),
            (|t| t.ready(false), r#"worker_ready{worker="inventory"} 0"#),
            (
                |t| t.timer_fired("ok"),
                r#"worker_timers_fired_total{worker="inventory",outcome="ok"} 1"#,
            ),
            (
                |t| t.fatal("fenced"),
                r#"worker_fatal_errors_total{worker="inventory",error_class="fenced"} 1"#,
            ),
        ];
        for (record, expected) in cases {
            let rendered = render(record);
            assert!(
                rendered.lines().any(|line| line == expected),
                "missing {expected}\nin:\n{rendered}"
            );
        }
    }

    #[test]
    fn state_restored_records_duration_records_and_bytes() {
        let rendered = render(|t| {
            t.state_restored("reservations", 1, 100, 4096, Duration::from_millis(120));
            t.state_restored("reservations", 3, 50, 1024, Duration::from_millis(30));
        });
        for expected in [
            r#"worker_state_restored_records_total{worker="inventory",store="reservations"} 150"#,
            r#"worker_state_restored_bytes_total{worker="inventory",store="reservations"} 5120"#,
            r#"worker_state_restore_duration_seconds_count{worker="inventory",store="reservations"} 2"#,
            r#"worker_state_restore_duration_seconds_bucket{worker="inventory",store="reservations",le="0.25"} 2"#,
            r#"worker_state_restore_duration_seconds_bucket{worker="inventory",store="reservations",le="0.1"} 1"#,
        ] {
            assert!(
                rendered.lines().any(|line| line == expected),
                "missing {expected}\nin:\n{rendered}"
            );
        }
    }

    #[test]
    fn seconds_histograms_use_the_configured_buckets() {
        let rendered = render(|t| t.handler_duration("OrderPlaced", Duration::from_millis(2)));
        let bounds: Vec<String> = samples(&rendered)
            .into_iter()
            .filter(|(name, _)| name == "worker_handler_duration_seconds_bucket")
            .filter_map(|(_, labels)| labels.get("le").cloned())
            .collect();
        let mut expected: Vec<String> = SECONDS_BUCKETS.iter().map(f64::to_string).collect();
        expected.push("+Inf".to_owned());
        assert_eq!(bounds, expected);
    }

    #[test]
    fn removed_lag_reads_zero() {
        let rendered = render(|t| {
            t.consumer_lag("orders", 1, 40);
            t.remove_consumer_lag("orders", 1);
        });
        assert!(
            rendered
                .lines()
                .any(|line| line
                    == r#"worker_consumer_lag_records{worker="inventory",topic="orders",partition="1"} 0"#),
            "{rendered}"
        );
    }

    #[test]
    fn statistics_lag_skips_unknown_lag_and_the_internal_partition() {
        let mut stats = rdkafka::Statistics::default();
        let mut topic = rdkafka::statistics::Topic {
            topic: "orders".to_owned(),
            ..Default::default()
        };
        for (partition, lag) in [(-1, 7), (0, 12), (1, -1), (2, 0)] {
            topic.partitions.insert(
                partition,
                rdkafka::statistics::Partition {
                    partition,
                    consumer_lag: lag,
                    ..Default::default()
                },
            );
        }
        stats.topics.insert("orders".to_owned(), topic);

        let rendered = render(|t| t.record_statistics(&stats));
        let lags: BTreeMap<String, String> = rendered
            .lines()
            .filter_map(|line| line.strip_prefix(CONSUMER_LAG))
            .filter_map(|rest| rest.split_once("partition=\""))
            .filter_map(|(_, rest)| rest.split_once("\"} "))
            .map(|(partition, value)| (partition.to_owned(), value.to_owned()))
            .collect();
        let expected: BTreeMap<String, String> = [("0", "12"), ("2", "0")]
            .into_iter()
            .map(|(p, v)| (p.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(lags, expected, "{rendered}");
    }

    #[test]
    fn catalogue_matches_what_is_recorded() {
        let rendered = render(exercise_everything);

        let mut seen: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        for (name, labels) in samples(&rendered) {
            let Some(metric) = catalogue_entry(&name) else {
                panic!("{name} is recorded but not in METRICS");
            };
            let keys: Vec<&str> = labels
                .keys()
                .map(String::as_str)
                .filter(|key| *key != "le")
                .collect();
            let mut declared: Vec<&str> = metric.labels.to_vec();
            declared.sort_unstable();
            assert_eq!(keys, declared, "labels of {name}");
            seen.entry(metric.name)
                .or_default()
                .extend(labels.into_values());
        }
        let missing: Vec<&str> = METRICS
            .iter()
            .map(|metric| metric.name)
            .filter(|name| !seen.contains_key(name))
            .collect();
        assert!(missing.is_empty(), "never recorded: {missing:?}");

        for metric in METRICS {
            assert!(
                rendered.contains(&format!("# TYPE {} {}\n", metric.name, metric.kind)),
                "{} is not a {}",
                metric.name,
                metric.kind
            );
            assert!(
                rendered.contains(&format!("# HELP {} ", metric.name)),
                "{} has no description",
                metric.name
            );
        }
    }

    #[test]
    fn catalogue_follows_the_naming_convention() {
        let mut names = BTreeSet::new();
        for metric in METRICS {
            assert!(names.insert(metric.name), "{} listed twice", metric.name);
            assert!(metric.name.starts_with("worker_"), "{}", metric.name);
            assert_eq!(
                metric.kind == COUNTER,
                metric.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                metric.name
            );
            if metric.kind == HISTOGRAM {
                assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
            }
            assert_eq!(metric.labels.first(), Some(&"worker"), "{}", metric.name);
            for label in metric.labels {
                assert!(
                    [
                        "worker",
                        "topic",
                        "partition",
                        "event_type",
                        "error_class",
                        "outcome",
                        "kind",
                        "store"
                    ]
                    .contains(label),
                    "{}: unbounded or unknown label {label}",
                    metric.name
                );
            }
            assert!(!metric.description.is_empty());
        }
    }

    #[test]
    fn units_follow_names() {
        assert_eq!(unit_of(HANDLER_DURATION), Unit::Seconds);
        assert_eq!(unit_of(STATE_RESTORED_BYTES), Unit::Bytes);
        assert_eq!(unit_of(RECORDS_CONSUMED), Unit::Count);
    }

    #[test]
    fn install_prometheus_is_idempotent() {
        let first = install_prometheus().expect("installs");
        let second = install_prometheus().expect("returns the installed handle");
        Telemetry::new("twice").fatal("test_marker");
        // Both handles render the one global recorder.
        assert!(first.render().contains(r#"worker="twice""#));
        assert!(second.render().contains(r#"worker="twice""#));
    }

    #[test]
    fn init_logging_twice_does_not_panic() {
        init_logging(LogFormat::Json, "inventory");
        init_logging(LogFormat::Text, "inventory");
    }
}
