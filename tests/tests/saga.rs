//! The order saga end to end: the five worker binaries and the simulator as separate processes
//! on the real broker and registry, a seeded run of orders with a known mix, and the end state
//! checked against what the simulator says it sent:
//!
//! - every order reaches exactly one terminal state (one `ShipmentCreated`, or one
//!   `OrderCancelled` with the expected reason);
//! - for every SKU, initial stock + restocks = available + held + shipped in inventory's own
//!   state, nothing is held once every order is terminal, available never went below zero (no
//!   hold answer ever reported it), and shipped units equal the shipped orders' lines;
//! - every customer got exactly the expected notifications, once each (one `NotificationSent`
//!   id per order and kind, one file per notification, or one delivery per notification to
//!   the webhook, its signature verified).
//!
//! Variants: one instance of each worker; two inventory and two fraud instances; and the
//! fault-injection suite, which runs a saga per fault (each worker killed with `kill -9` in turn
//! and restarted; inventory down for a third of the run; a rolling restart of two instances
//! each of inventory and fraud; the schema registry down while fraud restarts; 1% poison on
//! every topic a worker reads, with orders for unknown SKUs; the storefront upgrading
//! `OrderPlaced` to revision 2 half-way; the broker killed and restarted on its storage; the
//! notification webhook timing out or answering 503 for a while) and prints the figures of every
//! run in one table: orders lost, without a terminal
//! state or with two, oversold units, unbalanced SKUs, duplicate and missing notifications,
//! dead letters against the poison injected, and how long each restarted worker took to catch
//! up. The runs are serialised (they would otherwise share two cores between fifteen
//! processes). `SAGA_ORDERS` sets the orders per run (default 1000; `tests/faults` runs the
//! suite alone, with more); `FAULT_SCENARIOS` picks scenarios.
//!
//! On the local broker (`LOCAL_STACK=1`, set by `tests/run`) each run gets a fresh broker and
//! registry of its own (`deploy/local/stack` with its own folder): tansu 0.6.0 on SQLite slows
//! down as its database grows, and after one run of this size it stalls for longer than a
//! session timeout. Elsewhere (Apache Kafka) the runs share the cluster the environment names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use retail_codec::{Codec, RegistrationMode, registry_settings};
use retail_events::fulfilment::CancellationReason;
use retail_events::notification::NotificationKind;
use retail_events::{Event, EventId, Topic};
use retail_integration_tests::cluster::Cluster;
use retail_integration_tests::metrics_catalogue;
use retail_integration_tests::process::{ANY_LOOPBACK_PORT, Process};
use retail_integration_tests::webhook::WebhookReceiver;
use retail_integration_tests::{consumer_on, unique_name};
use retail_simulator::summary::{Expected, OrderSummary, Summary};

const PARTITIONS: i32 = 3;

/// One saga run at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn orders_per_run() -> u64 {
    std::env::var("SAGA_ORDERS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1000)
}

/// The workers of a run, their topics and groups.
struct Saga {
    name: String,
    prefix: String,
    /// Consumer group (id) of each worker, unique per run.
    groups: BTreeMap<&'static str, String>,
    notification_dir: PathBuf,
    log_dir: PathBuf,
    workers: Vec<Process>,
    /// Compare what the workers export with the metrics catalogue at the end of the run.
    check_metrics: bool,
    /// Poison records injected per input topic (by broker name): each must be dead-lettered
    /// once by every stage reading the topic, and is skipped when the saga is read back.
    poisoned: BTreeMap<String, i64>,
    /// Orders injected besides the simulator's, with how the saga must end them.
    extra_orders: Vec<OrderSummary>,
    /// The simulator's flags beyond the run's usual ones.
    simulator_flags: Vec<String>,
    /// Where notification delivers, when through its webhook channel rather than files.
    webhook: Option<WebhookReceiver>,
    /// Declared last: dropped after the workers are killed.
    cluster: Cluster,
}

const WORKERS: [&str; 5] = [
    "inventory",
    "fraud",
    "fulfilment",
    "shipping",
    "notification",
];

impl Saga {
    fn new(name: &str) -> Self {
        let run = unique_name(name);
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("saga")
            .join(&run);
        let cluster = Cluster::for_run(&base);
        Self {
            cluster,
            name: run.clone(),
            prefix: format!("{run}."),
            groups: WORKERS
                .iter()
                .map(|worker| (*worker, format!("{run}-{worker}")))
                .collect(),
            notification_dir: base.join("notifications"),
            log_dir: base.join("logs"),
            workers: Vec::new(),
            check_metrics: false,
            poisoned: BTreeMap::new(),
            extra_orders: Vec::new(),
            simulator_flags: Vec::new(),
            webhook: None,
        }
    }

    fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.name())
    }

    /// Starts instance `instance` of `worker`; returns its index in `workers`.
    fn start(&mut self, worker: &'static str, instance: usize) -> usize {
        let mut args: Vec<String> = [
            "--topic-prefix",
            &self.prefix,
            "--group-id",
            &self.groups[worker],
            "--instance-id",
            &format!("{worker}-{instance}"),
            "--http-addr",
            ANY_LOOPBACK_PORT,
            "--topic-partitions",
            &PARTITIONS.to_string(),
            // Long enough to ride out the local broker's pauses under this load (tansu on
            // SQLite stalls for 10 s and more at times, and does not hand a member that timed
            // out its partitions back); restarts take over at once anyway, by instance id.
            "--session-timeout",
            "60s",
            "--drain-deadline",
            "5s",
            "--commit-interval",
            "200ms",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let specific: &[&str] = match worker {
            // The deadline must exceed how long the slowest answer takes on the local broker
            // under this load (inventory's two hops); missing payments wait for it.
            "fulfilment" => &["--answer-deadline", "60s", "--pick-pack-time", "200ms"],
            _ => &[],
        };
        args.extend(specific.iter().map(ToString::to_string));
        let mut env = vec![
            ("KAFKA_BOOTSTRAP_SERVERS", self.cluster.bootstrap.clone()),
            ("SCHEMA_REGISTRY_URL", self.cluster.registry.clone()),
        ];
        if worker == "notification" {
            match &self.webhook {
                None => args.extend([
                    "--channel".to_owned(),
                    "file".to_owned(),
                    "--notification-dir".to_owned(),
                    self.notification_dir.display().to_string(),
                ]),
                Some(receiver) => {
                    // Short attempts and a short redelivery interval, for a run of seconds.
                    args.extend(
                        [
                            "--channel",
                            "webhook",
                            "--webhook-url",
                            &receiver.url(),
                            "--webhook-timeout",
                            "1s",
                            "--webhook-initial-backoff",
                            "100ms",
                            "--webhook-max-backoff",
                            "200ms",
                            "--redelivery-interval",
                            "2s",
                        ]
                        .map(ToString::to_string),
                    );
                    env.push((
                        "NOTIFICATION_WEBHOOK_SECRET",
                        WebhookReceiver::SECRET.to_owned(),
                    ));
                }
            }
        }
        let process = Process::start(
            worker,
            &format!("{worker}-{instance}"),
            &args,
            &env,
            Some(ANY_LOOPBACK_PORT.to_owned()),
            &self.log_dir,
        );
        self.workers.push(process);
        self.workers.len() - 1
    }

    async fn wait_ready(&mut self) {
        for worker in &mut self.workers {
            worker.wait_ready(Duration::from_secs(120)).await;
        }
    }

    /// Starts the simulator for `orders` orders; it exits on its own after them.
    fn simulate(&self, orders: u64, seed: u64) -> (Process, PathBuf) {
        let summary = self.log_dir.join("summary.json");
        let args: Vec<String> = [
            "--topic-prefix",
            &self.prefix,
            "--seed",
            &seed.to_string(),
            "--orders",
            &orders.to_string(),
            "--rate",
            "50",
            "--topic-partitions",
            &PARTITIONS.to_string(),
            "--linger",
            "20s",
            // Ample SKUs end a few units above their demand, so they fall below inventory's
            // low-stock threshold and restocks happen.
            "--ample-margin",
            "5",
            "--summary-file",
            &summary.display().to_string(),
        ]
        .iter()
        .map(ToString::to_string)
        .chain(self.simulator_flags.iter().cloned())
        .collect();
        let process = Process::start(
            "simulator",
            "simulator",
            &args,
            &[
                ("KAFKA_BOOTSTRAP_SERVERS", self.cluster.bootstrap.clone()),
                ("SCHEMA_REGISTRY_URL", self.cluster.registry.clone()),
            ],
            None,
            &self.log_dir,
        );
        (process, summary)
    }

    /// Stops every worker with SIGTERM; each must exit cleanly within its drain deadline.
    fn stop(&mut self) {
        for worker in &mut self.workers {
            let status = worker.terminate(Duration::from_secs(30));
            assert!(
                status.success(),
                "{} exited with {status} after SIGTERM; log:\n{}",
                worker.name,
                worker.log_tail()
            );
        }
    }

    /// Starts one instance of every worker and waits until all are ready.
    async fn start_all(&mut self) {
        for worker in WORKERS {
            self.start(worker, 0);
        }
        self.wait_ready().await;
    }

    fn position(&self, worker: &str, instance: usize) -> usize {
        let name = format!("{worker}-{instance}");
        self.workers
            .iter()
            .position(|process| process.name == name)
            .unwrap_or_else(|| panic!("{name} is not running"))
    }

    /// `kill -9` of one instance.
    fn kill(&mut self, worker: &str, instance: usize) {
        let index = self.position(worker, instance);
        self.workers[index].kill_9();
        self.workers.remove(index);
        println!("{}: killed {worker}-{instance} with SIGKILL", self.name);
    }

    /// SIGTERM to one instance, which must drain and exit cleanly.
    fn terminate(&mut self, worker: &str, instance: usize) {
        let index = self.position(worker, instance);
        let mut process = self.workers.remove(index);
        let status = process.terminate(Duration::from_secs(30));
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM; log:\n{}",
            process.name,
            process.log_tail()
        );
        println!("{}: stopped {worker}-{instance} with SIGTERM", self.name);
    }

    /// Starts one instance again and returns how long it took, from the start, until the
    /// worker had caught up (see [`Saga::caught_up`]).
    async fn restart_and_recover(
        &mut self,
        worker: &'static str,
        instance: usize,
    ) -> Option<Duration> {
        let started = Instant::now();
        let index = self.start(worker, instance);
        self.caught_up(index, started).await
    }

    /// How long after `since` the worker at `index` was ready and every stage of it had
    /// committed offsets past everything its input topics held when this was called (what
    /// piled up while it was away); `None` if not within 120 s.
    ///
    /// A consumer-lag threshold would not do: the lag a busy stage reports under steady load
    /// (inventory's, 110-304 records at 50 orders/s) does not fall under a fixed bound
    /// until the load stops.
    async fn caught_up(&mut self, index: usize, since: Instant) -> Option<Duration> {
        let worker = self.workers[index]
            .name
            .rsplit_once('-')
            .map_or(self.workers[index].name.clone(), |(worker, _)| {
                worker.to_owned()
            });
        let stages: Vec<&'static str> = READERS
            .iter()
            .map(|(stage, _)| *stage)
            .filter(|stage| {
                *stage == worker
                    || stage
                        .strip_prefix(worker.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .collect();
        assert!(!stages.is_empty(), "{worker} reads nothing in READERS");
        let backlog = self.backlog(&stages).await;
        self.workers[index]
            .wait_ready(Duration::from_secs(120))
            .await;
        let recovered = self
            .committed_past_backlog(since, backlog, Duration::from_secs(120), false)
            .await;
        let took = recovered
            .into_iter()
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()?;
        println!(
            "{}: {} caught up after {took:?}",
            self.name, self.workers[index].name
        );
        Some(took)
    }

    /// How long after `since` the notification worker at `index` had its channel up and no
    /// message waiting (`worker_open_items` 0); `None` if not within 120 s.
    async fn delivered_all(&mut self, index: usize, since: Instant) -> Option<Duration> {
        while since.elapsed() < Duration::from_secs(120) {
            if let Some((200, body)) = self.workers[index].get("/metrics").await
                && gauge(&body, r#"notification_channel_up{channel="webhook"}"#) == Some(1.0)
                && gauge(&body, r#"worker_open_items{worker="notification"}"#) == Some(0.0)
            {
                let took = since.elapsed();
                println!(
                    "{}: {} delivered everything waiting after {took:?}",
                    self.name, self.workers[index].name
                );
                return Some(took);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Like an orchestrator: starts again, with the same instance id, every worker that has
    /// exited; returns their names.
    fn restart_exited(&mut self) -> Vec<String> {
        let mut exited = Vec::new();
        let mut index = 0;
        while index < self.workers.len() {
            if let Some(status) = self.workers[index].exited() {
                let process = self.workers.remove(index);
                println!(
                    "{}: {} exited with {status}; starting it again. Its last log lines:\n{}",
                    self.name,
                    process.name,
                    process.log_tail()
                );
                exited.push(process.name.clone());
            } else {
                index += 1;
            }
        }
        for name in &exited {
            let (worker, instance) = name.rsplit_once('-').expect("<worker>-<instance>");
            let worker = WORKERS
                .into_iter()
                .find(|known| *known == worker)
                .expect("a known worker");
            self.start(worker, instance.parse().expect("an instance number"));
        }
        exited
    }

    /// Every stage's recovery from `since`: until its group has committed offsets past
    /// everything its input topics held at `since`, restarting any worker that exits meanwhile
    /// (within 180 s, else `None`), in the order of [`READERS`].
    async fn recover_all(&mut self, since: Instant) -> Vec<Option<Duration>> {
        let stages: Vec<&'static str> = READERS.iter().map(|(stage, _)| *stage).collect();
        let backlog = self.backlog(&stages).await;
        self.committed_past_backlog(since, backlog, Duration::from_secs(180), true)
            .await
    }

    /// For each of `stages` (names in [`READERS`]): a client of its group, and each of its
    /// input partitions with the partition's end now.
    async fn backlog(&self, stages: &[&'static str]) -> Vec<StageBacklog> {
        let topics: Vec<String> = read_topics()
            .into_iter()
            .map(|topic| self.topic(topic))
            .collect();
        let bootstrap = self.cluster.bootstrap.clone();
        let ends = tokio::task::spawn_blocking(move || {
            retail_local::observe::ends(&bootstrap, &topics, PARTITIONS)
        })
        .await
        .expect("end reader thread")
        .expect("input topic ends");
        READERS
            .iter()
            .filter(|(stage, _)| stages.contains(stage))
            .map(|(stage, inputs)| {
                let consumer = retail_local::observe::client(&self.cluster.bootstrap)
                    .set("group.id", format!("{}-{stage}", self.name))
                    .create::<BaseConsumer>()
                    .expect("an offset reader");
                let wanted: Vec<PartitionEnd> = inputs
                    .iter()
                    .flat_map(|topic| {
                        let name = self.topic(*topic);
                        (0..PARTITIONS).map(move |partition| (name.clone(), partition))
                    })
                    .map(|key| {
                        let end = ends.get(&key).copied().unwrap_or(0);
                        (key, end)
                    })
                    .collect();
                (*stage, Arc::new(consumer), Arc::new(wanted))
            })
            .collect()
    }

    /// How long after `since` each stage of `backlog` had committed past its partitions' ends
    /// (polled every 0.5 s, at most `within`; `None` for a stage that had not), in the order of
    /// `backlog`. With `restart`, a worker that exits meanwhile is started again.
    async fn committed_past_backlog(
        &mut self,
        since: Instant,
        backlog: Vec<StageBacklog>,
        within: Duration,
        restart: bool,
    ) -> Vec<Option<Duration>> {
        let mut recovered: BTreeMap<&str, Duration> = BTreeMap::new();
        while since.elapsed() < within && recovered.len() < backlog.len() {
            if restart {
                self.restart_exited();
            }
            for (stage, consumer, wanted) in &backlog {
                if recovered.contains_key(stage) {
                    continue;
                }
                let (consumer, wanted) = (Arc::clone(consumer), Arc::clone(wanted));
                let caught_up =
                    tokio::task::spawn_blocking(move || committed_past(&consumer, &wanted))
                        .await
                        .expect("offset reader thread");
                if caught_up {
                    let took = since.elapsed();
                    println!(
                        "{}: {stage} committed past the backlog after {took:?}",
                        self.name
                    );
                    recovered.insert(stage, took);
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        backlog
            .iter()
            .map(|(stage, _, _)| recovered.get(stage).copied())
            .collect()
    }

    fn log_hint(&self) -> String {
        format!("logs of run {} in {}", self.name, self.log_dir.display())
    }
}

/// Everything the saga announced, as read back from its topics.
#[derive(Default)]
struct Observed {
    /// Terminal events per order: (event id, shipped or cancelled with reason).
    terminal: HashMap<String, BTreeMap<EventId, Terminal>>,
    /// Shipped lines per SKU, from the distinct shipments.
    shipped_units: BTreeMap<String, i64>,
    /// Notification ids per (order, kind), and whether sent.
    notifications: HashMap<(String, NotificationKind), BTreeMap<String, bool>>,
    /// Lowest `available` any hold answer reported, per SKU.
    lowest_available: BTreeMap<String, i32>,
    /// Why reading stopped before every order was complete, if it did.
    incomplete: Option<String>,
    /// Orders some downstream event was seen for.
    touched: HashSet<String>,
    /// Records of poisoned topics that do not decode or break the contract's rules.
    skipped: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminal {
    Shipped,
    Cancelled(CancellationReason),
}

impl Observed {
    fn add(&mut self, event: Event, seen_shipments: &mut BTreeSet<EventId>) {
        if let Event::FulfilmentStarted(_)
        | Event::OrderPacked(_)
        | Event::OrderCancelled(_)
        | Event::ShipmentCreated(_)
        | Event::SkuHoldAnswered(_) = &event
        {
            self.touched.insert(event.key().to_owned());
        }
        match event {
            Event::ShipmentCreated(shipment) => {
                if seen_shipments.insert(shipment.envelope.event_id) {
                    for line in &shipment.lines {
                        *self.shipped_units.entry(line.sku.clone()).or_default() +=
                            i64::from(line.quantity);
                    }
                }
                self.terminal
                    .entry(shipment.order_id)
                    .or_default()
                    .insert(shipment.envelope.event_id, Terminal::Shipped);
            }
            Event::OrderCancelled(cancelled) => {
                self.terminal.entry(cancelled.order_id).or_default().insert(
                    cancelled.envelope.event_id,
                    Terminal::Cancelled(cancelled.reason),
                );
            }
            Event::NotificationSent(sent) => {
                self.notifications
                    .entry((sent.order_id, sent.kind))
                    .or_default()
                    .insert(sent.notification_id, true);
            }
            Event::NotificationFailed(failed) => {
                self.notifications
                    .entry((failed.order_id, failed.kind))
                    .or_default()
                    .insert(failed.notification_id, false);
            }
            Event::SkuHoldAnswered(answer) => {
                let lowest = self
                    .lowest_available
                    .entry(answer.sku)
                    .or_insert(answer.available);
                *lowest = (*lowest).min(answer.available);
            }
            _ => {}
        }
    }

    /// Every order has a terminal event and all its notifications.
    fn complete(&self, summary: &Summary) -> bool {
        summary.orders.iter().all(|order| {
            let Some(terminal) = self
                .terminal
                .get(&order.order_id)
                .and_then(|events| events.values().next())
            else {
                return false;
            };
            expected_notifications(order, *terminal).iter().all(|kind| {
                self.notifications
                    .contains_key(&(order.order_id.clone(), *kind))
            })
        })
    }
}

/// The notifications an order must get, given how it ended.
fn expected_notifications(order: &OrderSummary, terminal: Terminal) -> HashSet<NotificationKind> {
    let mut kinds: HashSet<NotificationKind> =
        order.expected_notifications.iter().copied().collect();
    match terminal {
        Terminal::Shipped => kinds.insert(NotificationKind::OrderShipped),
        Terminal::Cancelled(_) => kinds.insert(NotificationKind::OrderCancelled),
    };
    kinds
}

async fn codec(saga: &Saga) -> Codec {
    let settings =
        registry_settings(&saga.cluster.registry, None, Duration::from_secs(10)).expect("settings");
    Codec::connect(settings, RegistrationMode::Register)
        .await
        .expect("codec")
}

/// A consumer of `topics` from their beginnings (assigned, no group to join).
fn reader(saga: &Saga, topics: &[String]) -> StreamConsumer {
    let consumer = consumer_on(&saga.cluster.bootstrap, &unique_name("saga-reader"));
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        for partition in 0..PARTITIONS {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Reads the saga's topics until every order is complete, or fails after `within`.
async fn observe(saga: &Saga, summary: &Summary, within: Duration) -> Observed {
    let codec = codec(saga).await;
    let consumer = reader(
        saga,
        &[
            saga.topic(Topic::FulfilmentOrders),
            saga.topic(Topic::ShippingShipments),
            saga.topic(Topic::NotificationNotifications),
            saga.topic(Topic::InventorySkuHolds),
        ],
    );
    let mut observed = Observed::default();
    let mut shipments = BTreeSet::new();
    let deadline = Instant::now() + within;
    let mut last_report = Instant::now();
    while !observed.complete(summary) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let missing: Vec<&str> = summary
                .orders
                .iter()
                .filter(|order| !observed.terminal.contains_key(&order.order_id))
                .map(|order| order.order_id.as_str())
                .take(10)
                .collect();
            let unnotified: Vec<(&str, Vec<NotificationKind>)> = summary
                .orders
                .iter()
                .filter_map(|order| {
                    let terminal = *observed.terminal.get(&order.order_id)?.values().next()?;
                    let mut kinds: Vec<NotificationKind> = expected_notifications(order, terminal)
                        .into_iter()
                        .filter(|kind| {
                            !observed
                                .notifications
                                .contains_key(&(order.order_id.clone(), *kind))
                        })
                        .collect();
                    kinds.sort_by_key(|kind| format!("{kind:?}"));
                    (!kinds.is_empty()).then_some((order.order_id.as_str(), kinds))
                })
                .take(10)
                .collect();
            observed.incomplete = Some(format!(
                "saga incomplete after {within:?}: {} of {} orders terminal; first without a terminal state: {missing:?}; first terminal ones missing notifications: {unnotified:?}; {}",
                observed.terminal.len(),
                summary.orders.len(),
                saga.log_hint()
            ));
            break;
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            println!(
                "{}: {} of {} orders terminal",
                saga.name,
                observed.terminal.len(),
                summary.orders.len()
            );
            last_report = Instant::now();
        }
        let Ok(received) =
            tokio::time::timeout(left.min(Duration::from_secs(1)), consumer.recv()).await
        else {
            continue;
        };
        let message = match received {
            Ok(message) => message,
            // A broker restart shows as transport errors; the reader reconnects by itself.
            Err(error) => {
                println!("{}: reading back: {error}", saga.name);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Some(event) = readable(saga, &codec, &message, &mut observed).await {
            observed.add(event, &mut shipments);
        }
    }
    // Trailing duplicates or, worse, second terminal events: read what else arrives.
    let settle = Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(message)) = tokio::time::timeout(
        settle.saturating_duration_since(Instant::now()),
        consumer.recv(),
    )
    .await
    {
        if let Some(event) = readable(saga, &codec, &message, &mut observed).await {
            observed.add(event, &mut shipments);
        }
    }
    observed
}

/// The event of a record read back; `None` for a poison record (it does not decode, or breaks
/// the contract's rules) of a topic the run poisoned, counted as skipped. Anything else the
/// workers wrote must decode and be valid.
async fn readable(
    saga: &Saga,
    codec: &Codec,
    message: &rdkafka::message::BorrowedMessage<'_>,
    observed: &mut Observed,
) -> Option<Event> {
    let payload = message.payload().unwrap_or_default();
    let event = codec
        .decode(payload)
        .await
        .map_err(|error| error.to_string())
        .and_then(|event| match event.validate() {
            Ok(()) => Ok(event),
            Err(invalid) => Err(invalid.to_string()),
        });
    match event {
        Ok(event) => Some(event),
        Err(_) if saga.poisoned.contains_key(message.topic()) => {
            observed.skipped += 1;
            None
        }
        Err(error) => panic!(
            "{}/{}@{} does not read back: {error}",
            message.topic(),
            message.partition(),
            message.offset()
        ),
    }
}

/// Inventory's stock state per SKU, read back from the stock stage's changelog (the latest
/// record per key), up to the end of every partition (the workers are stopped by now). The
/// run command (`retail-local`) reads it the same way for its stock balance.
async fn stock_state(saga: &Saga) -> BTreeMap<String, inventory::SkuState> {
    let changelog = format!("{}.stock.stock.changelog", saga.groups["inventory"]);
    let bootstrap = saga.cluster.bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        retail_local::observe::stock_state(&bootstrap, &changelog, PARTITIONS)
    })
    .await
    .expect("changelog reader thread")
    .expect("the stock changelog reads to its end")
}

/// What a run ended with, counted against what the simulator sent: all zero in a correct run.
#[derive(Debug, Default, Clone)]
struct Figures {
    /// Orders the simulator sent.
    orders: usize,
    /// Orders nothing downstream ever reacted to (no hold answer, no fulfilment event, no
    /// shipment).
    lost: usize,
    /// Orders with no terminal event (`ShipmentCreated` or `OrderCancelled`).
    without_terminal: usize,
    /// Orders with more than one distinct terminal event.
    doubled: usize,
    /// Orders whose one terminal event is not the one their kind leads to.
    wrong_outcome: usize,
    /// Units sold beyond stock: the deepest negative `available` seen per SKU, summed.
    oversold_units: i64,
    /// SKUs whose units do not balance, are still held, or whose shipped units disagree with
    /// the shipments.
    unbalanced_skus: usize,
    /// Notifications of one kind for one order beyond the first, plus notification files
    /// beyond one per `NotificationSent`.
    duplicate_notifications: usize,
    /// Expected notifications never announced, or announced as failed.
    missing_notifications: usize,
    /// Unexpected kinds of notification for an order.
    unexpected_notifications: usize,
    /// Records in the workers' dead-letter topics.
    dead_lettered: i64,
    /// Records the dead-letter topics should hold: every poison record once per stage reading
    /// its topic.
    dead_letters_expected: i64,
    /// Terminal outcomes, by kind.
    outcomes: BTreeMap<String, usize>,
    /// The first problems found, described.
    problems: Vec<String>,
}

impl Figures {
    fn problem(&mut self, problem: String) {
        if self.problems.len() < 20 {
            self.problems.push(problem);
        }
    }

    /// Whether everything that should be zero is, and the dead letters are the poison.
    fn clean(&self) -> bool {
        self.lost == 0
            && self.without_terminal == 0
            && self.doubled == 0
            && self.wrong_outcome == 0
            && self.oversold_units == 0
            && self.unbalanced_skus == 0
            && self.duplicate_notifications == 0
            && self.missing_notifications == 0
            && self.unexpected_notifications == 0
            && self.dead_lettered == self.dead_letters_expected
            && self.problems.is_empty()
    }
}

/// Counts the checks of the module docs.
fn figures(
    saga: &Saga,
    summary: &Summary,
    observed: &Observed,
    stock: &BTreeMap<String, inventory::SkuState>,
    dead_letters: &BTreeMap<String, i64>,
) -> Figures {
    let expected_letters = expected_dead_letters(saga);
    let mut figures = Figures {
        orders: summary.orders.len(),
        dead_lettered: dead_letters.values().sum(),
        dead_letters_expected: expected_letters.values().sum(),
        ..Figures::default()
    };
    if let Some(incomplete) = &observed.incomplete {
        figures.problem(incomplete.clone());
    }
    for (topic, expected) in &expected_letters {
        let seen = dead_letters.get(topic).copied().unwrap_or(0);
        if seen != *expected {
            figures.problem(format!("{topic}: {seen} dead letters, expected {expected}"));
        }
    }
    let skippable: i64 = [
        Topic::FulfilmentOrders,
        Topic::ShippingShipments,
        Topic::InventorySkuHolds,
    ]
    .iter()
    .filter_map(|topic| saga.poisoned.get(&saga.topic(*topic)))
    .sum();
    if observed.skipped != skippable {
        figures.problem(format!(
            "{} poison records skipped while reading back, {skippable} injected there",
            observed.skipped
        ));
    }
    for order in &summary.orders {
        if !observed.touched.contains(&order.order_id) {
            figures.lost += 1;
        }
        let Some(terminal) = observed.terminal.get(&order.order_id) else {
            figures.without_terminal += 1;
            continue;
        };
        if terminal.len() > 1 {
            figures.doubled += 1;
            figures.problem(format!(
                "order {} reached {} terminal states: {terminal:?}",
                order.order_id,
                terminal.len()
            ));
        }
        let outcome = *terminal.values().next().expect("one");
        let expected = match (order.expected, outcome) {
            (Expected::Shipped, Terminal::Shipped)
            | (Expected::ShippedOrOutOfStock, Terminal::Shipped)
            | (
                Expected::ShippedOrOutOfStock,
                Terminal::Cancelled(CancellationReason::OutOfStock),
            ) => true,
            (Expected::Cancelled { reason }, Terminal::Cancelled(seen)) => reason == seen,
            _ => false,
        };
        if !expected {
            figures.wrong_outcome += 1;
            figures.problem(format!(
                "order {} ({:?}) expected {:?}, ended {outcome:?}",
                order.order_id, order.category, order.expected
            ));
        }
        *figures.outcomes.entry(format!("{outcome:?}")).or_default() += 1;

        let kinds = expected_notifications(order, outcome);
        for kind in &kinds {
            let Some(ids) = observed.notifications.get(&(order.order_id.clone(), *kind)) else {
                figures.missing_notifications += 1;
                figures.problem(format!(
                    "order {}: no {kind:?} notification",
                    order.order_id
                ));
                continue;
            };
            if ids.len() > 1 {
                figures.duplicate_notifications += ids.len() - 1;
                figures.problem(format!(
                    "order {} got {} notifications of kind {kind:?}",
                    order.order_id,
                    ids.len()
                ));
            }
            if !ids.values().all(|sent| *sent) {
                figures.missing_notifications += 1;
                figures.problem(format!("order {}: {kind:?} failed", order.order_id));
            }
        }
        let extra: Vec<&NotificationKind> = observed
            .notifications
            .keys()
            .filter(|(id, kind)| *id == order.order_id && !kinds.contains(kind))
            .map(|(_, kind)| kind)
            .collect();
        if !extra.is_empty() {
            figures.unexpected_notifications += extra.len();
            figures.problem(format!(
                "order {} got unexpected notifications {extra:?}",
                order.order_id
            ));
        }
    }

    for sku in &summary.skus {
        let stocked = sku.initial_stock + sku.restocked_units;
        let state = stock.get(&sku.sku).cloned().unwrap_or_default();
        let lowest = observed
            .lowest_available
            .get(&sku.sku)
            .map_or(0, |lowest| i64::from(*lowest))
            .min(state.available);
        figures.oversold_units += (-lowest).max(0);
        let shipped_seen = observed.shipped_units.get(&sku.sku).copied().unwrap_or(0);
        if state.available + state.held() + state.shipped != stocked
            || state.held() != 0
            || state.shipped != shipped_seen
        {
            figures.unbalanced_skus += 1;
            figures.problem(format!(
                "{}: available {} + held {} + shipped {} (shipments say {shipped_seen}) against initial {} + restocked {}; holds {:?}",
                sku.sku,
                state.available,
                state.held(),
                state.shipped,
                sku.initial_stock,
                sku.restocked_units,
                state.holds
            ));
        }
    }

    if let Some(receiver) = &saga.webhook {
        delivered_by_webhook(&receiver.received(), observed, &mut figures);
        return figures;
    }
    let files = std::fs::read_dir(&saga.notification_dir)
        .map(|entries| entries.filter_map(Result::ok).count())
        .unwrap_or(0);
    let notifications: usize = observed.notifications.values().map(BTreeMap::len).sum();
    if files != notifications {
        figures.duplicate_notifications += files.saturating_sub(notifications);
        figures.problem(format!(
            "{files} notification files for {notifications} notifications in {}",
            saga.notification_dir.display()
        ));
    }
    figures
}

/// Notifications through the webhook: every one announced as sent was accepted by the receiver
/// once (a second delivery of an id counts as a duplicate, though receivers drop it by its
/// `Idempotency-Key`), none was accepted without being announced, and every signature verified.
fn delivered_by_webhook(
    received: &retail_integration_tests::webhook::Received,
    observed: &Observed,
    figures: &mut Figures,
) {
    let announced: BTreeSet<&String> = observed
        .notifications
        .values()
        .flat_map(|ids| ids.iter().filter(|(_, sent)| **sent).map(|(id, _)| id))
        .collect();
    for (id, times) in &received.accepted {
        if *times > 1 {
            figures.duplicate_notifications += usize::try_from(*times - 1).expect("a count");
            figures.problem(format!("the webhook accepted {id} {times} times"));
        }
        if !announced.contains(id) {
            figures.problem(format!(
                "the webhook accepted {id}, which no NotificationSent announces"
            ));
        }
    }
    for id in announced {
        if !received.accepted.contains_key(id) {
            figures.missing_notifications += 1;
            figures.problem(format!(
                "{id} was announced as sent but the webhook never accepted it"
            ));
        }
    }
    if received.bad_signatures > 0 {
        figures.problem(format!(
            "{} deliveries did not verify against the signing secret",
            received.bad_signatures
        ));
    }
    println!(
        "webhook: {} notifications accepted, {} requests failed during the outage",
        received.accepted.len(),
        received.failed
    );
}

/// The checks of the module docs, as assertions; prints the figures.
fn check(
    saga: &Saga,
    summary: &Summary,
    observed: &Observed,
    stock: &BTreeMap<String, inventory::SkuState>,
    dead_letters: &BTreeMap<String, i64>,
) -> Figures {
    let figures = figures(saga, summary, observed, stock, dead_letters);
    assert!(
        figures.clean(),
        "{}: {figures:#?}; {}",
        saga.name,
        saga.log_hint()
    );
    println!(
        "{}: {} orders, outcomes {:?}; {} SKUs balanced ({} shipped units); {} notifications, one each; nothing dead-lettered",
        saga.name,
        figures.orders,
        figures.outcomes,
        summary.skus.len(),
        observed.shipped_units.values().sum::<i64>(),
        observed
            .notifications
            .values()
            .map(BTreeMap::len)
            .sum::<usize>(),
    );
    figures
}

/// Records in each of the run's dead-letter topics: every stage of every worker has one
/// (`<group>.dlq`, where a staged worker's groups are `<group>.<stage>`), counted from the
/// partitions' ends.
async fn dead_lettered(saga: &Saga) -> BTreeMap<String, i64> {
    let bootstrap = saga.cluster.bootstrap.clone();
    let groups: Vec<String> = saga.groups.values().cloned().collect();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = retail_local::observe::client(&bootstrap)
            .create()
            .expect("metadata reader");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        let topics: Vec<String> = metadata
            .topics()
            .iter()
            .map(|topic| topic.name().to_owned())
            .filter(|name| {
                name.ends_with(".dlq")
                    && groups.iter().any(|group| name.starts_with(group.as_str()))
            })
            .collect();
        for group in &groups {
            assert!(
                topics.iter().any(|topic| topic.starts_with(group.as_str())),
                "no dead-letter topic of group {group} among {topics:?}"
            );
        }
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for ((topic, _partition), end) in
            retail_local::observe::ends(&bootstrap, &topics, PARTITIONS)
                .expect("dead-letter topic ends")
        {
            *counts.entry(topic).or_default() += end;
        }
        counts
    })
    .await
    .expect("dead-letter reader thread")
}

/// Scrapes every running worker's `/metrics` and compares it with the metrics catalogue
/// (`deploy/metrics.md`), and lints it with `promtool check metrics`.
async fn check_metrics_catalogue(saga: &Saga) {
    let markdown = std::fs::read_to_string(metrics_catalogue::path()).expect("deploy/metrics.md");
    let rows = metrics_catalogue::parse(&markdown).expect("the catalogue parses");
    let mut problems = Vec::new();
    for process in &saga.workers {
        let worker = process
            .name
            .rsplit_once('-')
            .map_or(process.name.as_str(), |(worker, _instance)| worker);
        let (status, body) = process
            .get("/metrics")
            .await
            .unwrap_or_else(|| panic!("{} does not answer /metrics", process.name));
        assert_eq!(status, 200, "{} /metrics", process.name);
        let exported = metrics_catalogue::exported(&body).expect("a Prometheus exposition");
        problems.extend(metrics_catalogue::compare_scrape(&rows, worker, &exported));
        lint_exposition(&process.name, &body);
    }
    assert!(
        problems.is_empty(),
        "deploy/metrics.md disagrees with what the workers export: {problems:#?}"
    );
}

/// `promtool check metrics` (Debian's prometheus package; tests/run installs it) on one scrape.
fn lint_exposition(name: &str, exposition: &str) {
    use std::io::Write as _;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (tests/run installs Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("promtool reads the scrape");
    let output = promtool.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics on {name}'s /metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the simulator to the end, then waits for the saga to finish every order, and asserts
/// the checks of the module docs.
async fn run_and_check(saga: &mut Saga, seed: u64, during: impl AsyncFnOnce(&mut Saga)) -> Figures {
    let (summary, observed, stock, dead) = run(saga, seed, during).await;
    check(saga, &summary, &observed, &stock, &dead)
}

/// Runs the simulator to the end while `during` injects faults, waits for the saga to finish
/// every order (10 minutes at most), stops the workers, and reads back what the checks need.
async fn run(
    saga: &mut Saga,
    seed: u64,
    during: impl AsyncFnOnce(&mut Saga),
) -> (
    Summary,
    Observed,
    BTreeMap<String, inventory::SkuState>,
    BTreeMap<String, i64>,
) {
    let orders = orders_per_run();
    let (mut simulator, summary_path) = saga.simulate(orders, seed);
    during(saga).await;
    let status = simulator.wait_for_exit(Duration::from_secs(600));
    assert!(
        status.success(),
        "simulator exited with {status}; log:\n{}",
        simulator.log_tail()
    );
    let mut summary: Summary =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).expect("summary file"))
            .expect("summary json");
    assert_eq!(summary.orders.len() as u64, orders);
    summary.orders.extend(saga.extra_orders.iter().cloned());
    let observed = observe(saga, &summary, Duration::from_secs(600)).await;
    if saga.check_metrics {
        check_metrics_catalogue(saga).await;
    }
    saga.stop();
    let stock = stock_state(saga).await;
    let dead = dead_lettered(saga).await;
    (summary, observed, stock, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_run_ends_every_order_once_with_balanced_stock_and_one_notification_each() {
    let _serial = SERIAL.lock().await;
    let mut saga = Saga::new("saga-one");
    // Every worker ran from the start through every kind of order: each exports all it always
    // does.
    saga.check_metrics = true;
    for worker in WORKERS {
        saga.start(worker, 0);
    }
    saga.wait_ready().await;
    run_and_check(&mut saga, 42, async |_: &mut Saga| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inventory_and_two_fraud_instances_end_in_the_same_checks() {
    let _serial = SERIAL.lock().await;
    let mut saga = Saga::new("saga-two");
    for worker in WORKERS {
        saga.start(worker, 0);
    }
    saga.start("inventory", 1);
    saga.start("fraud", 1);
    saga.wait_ready().await;
    run_and_check(&mut saga, 43, async |_: &mut Saga| {}).await;
}

/// The fault-injection suite: a saga run per scenario, the fault injected while the simulator
/// sends, and the run's figures in one table. Recovery is from the faulted worker's start (for
/// the registry outage: from the registry's; for the broker restart: from the broker's, for
/// every worker) until it is caught up.
/// Every figure that should be zero must be, or the suite fails after printing the table.
/// `SAGA_ORDERS` sets the orders per scenario (`tests/faults` runs it longer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_suite() {
    let _serial = SERIAL.lock().await;
    let mut rows = Vec::new();

    // kill -9 of each worker in turn, mid-stream, and restart with the same instance id.
    if selected("kill") {
        let mut saga = Saga::new("fault-kill");
        saga.start_all().await;
        let row = run_with_faults(
            &mut saga,
            44,
            "kill -9 of each worker in turn, restarted",
            async |saga: &mut Saga| {
                let mut recovery = Vec::new();
                let gap = run_time() / 8;
                for worker in WORKERS {
                    tokio::time::sleep(gap).await;
                    saga.kill(worker, 0);
                    recovery.push(saga.restart_and_recover(worker, 0).await);
                }
                recovery
            },
        )
        .await;
        rows.push(row);
    }

    // One worker down for a while: its inputs pile up, then it catches up.
    if selected("down") {
        let mut saga = Saga::new("fault-down");
        saga.start_all().await;
        let row = run_with_faults(
            &mut saga,
            45,
            "inventory down for a third of the run, then back",
            async |saga: &mut Saga| {
                tokio::time::sleep(run_time() / 5).await;
                saga.terminate("inventory", 0);
                tokio::time::sleep(run_time() / 3).await;
                vec![saga.restart_and_recover("inventory", 0).await]
            },
        )
        .await;
        rows.push(row);
    }

    // Rolling restart of two instances each of inventory and fraud (SIGTERM, restart, next).
    if selected("rolling") {
        let mut saga = Saga::new("fault-rolling");
        saga.start_all().await;
        saga.start("inventory", 1);
        saga.start("fraud", 1);
        saga.wait_ready().await;
        let row = run_with_faults(
            &mut saga,
            46,
            "rolling restart of inventory and fraud, two instances each",
            async |saga: &mut Saga| {
                let mut recovery = Vec::new();
                tokio::time::sleep(run_time() / 5).await;
                for worker in ["inventory", "fraud"] {
                    for instance in 0..2 {
                        saga.terminate(worker, instance);
                        recovery.push(saga.restart_and_recover(worker, instance).await);
                    }
                }
                recovery
            },
        )
        .await;
        rows.push(row);
    }

    // The registry down for a while; a worker restarted meanwhile waits for it.
    if selected("registry") {
        let mut saga = Saga::new("fault-registry");
        if saga.cluster.owns_stack() {
            saga.start_all().await;
            let row = run_with_faults(
                &mut saga,
                47,
                "schema registry down for a quarter of the run, fraud restarted meanwhile",
                async |saga: &mut Saga| {
                    tokio::time::sleep(run_time() / 5).await;
                    saga.cluster.stop_registry();
                    println!("{}: stopped the schema registry", saga.name);
                    saga.terminate("fraud", 0);
                    let restarted = saga.start("fraud", 0);
                    tokio::time::sleep(run_time() / 4).await;
                    let (status, _) = saga.workers[restarted]
                        .get("/readyz")
                        .await
                        .unwrap_or((0, String::new()));
                    assert_ne!(status, 200, "fraud reported ready with the registry down");
                    let since = Instant::now();
                    saga.cluster.start_registry();
                    println!("{}: started the schema registry again", saga.name);
                    vec![saga.caught_up(restarted, since).await]
                },
            )
            .await;
            rows.push(row);
        } else {
            println!(
                "registry outage: skipped on a shared cluster (its registry is not ours to stop)"
            );
        }
    }

    // 1% poison on every topic a worker reads: dead-lettered by each stage reading it, the rest
    // flows; orders for unknown SKUs end cancelled.
    if selected("poison") {
        let mut saga = Saga::new("fault-poison");
        saga.start_all().await;
        let per_topic = usize::try_from(orders_per_run() / 100).expect("a count");
        let row = run_with_faults(
        &mut saga,
        48,
        "1% poison on every input topic (garbage, unknown schema id, invalid event) and orders for unknown SKUs",
        async |saga: &mut Saga| {
            inject_poison(saga, per_topic.max(3)).await;
            Vec::new()
        },
    )
    .await;
        rows.push(row);
    }

    // The storefront upgrades OrderPlaced to revision 2 (an added optional field) half-way:
    // every consumer reads the new records through schema resolution.
    if selected("schema") {
        let mut saga = Saga::new("fault-schema");
        saga.start_all().await;
        saga.simulator_flags = vec![
            "--order-schema-v2-from".into(),
            (orders_per_run() / 2).to_string(),
        ];
        let row = run_with_faults(
            &mut saga,
            50,
            "storefront upgraded to OrderPlaced revision 2 (an added optional field) half-way",
            async |_: &mut Saga| Vec::new(),
        )
        .await;
        let subject = retail_events::catalogue()
            .event("retail.storefront.OrderPlaced")
            .expect("OrderPlaced")
            .descriptor
            .subject();
        let versions = reqwest::get(format!(
            "{}/subjects/{subject}/versions",
            saga.cluster.registry
        ))
        .await
        .expect("the registry answers")
        .text()
        .await
        .expect("a body");
        assert_eq!(
            versions, "[1,2]",
            "revision 2 was registered under {subject} after revision 1"
        );
        rows.push(row);
    }

    // The broker restarted on its storage mid-run: every worker reconnects and catches up.
    if selected("broker") {
        let mut saga = Saga::new("fault-broker");
        if saga.cluster.owns_stack() {
            saga.start_all().await;
            let row = run_with_faults(
                &mut saga,
                49,
                "broker killed (kill -9), back on its storage 5 s later",
                async |saga: &mut Saga| {
                    tokio::time::sleep(run_time() / 3).await;
                    saga.cluster.restart_broker();
                    let since = Instant::now();
                    println!("{}: restarted the broker", saga.name);
                    // A worker whose records in flight fail at the broker's shutdown stores no
                    // offset past them and exits (`worker_fatal_errors_total`); its orchestrator
                    // starts it again, as `recover_all` does.
                    saga.recover_all(since).await
                },
            )
            .await;
            rows.push(row);
        } else {
            println!(
                "broker restart: skipped on a shared cluster (its brokers are not ours to stop)"
            );
        }
    }

    // The notification webhook times out or answers 503 for a while: the messages wait in the
    // worker, which goes on with other orders, and go out once each when it is back.
    if selected("webhook") {
        let mut saga = Saga::new("fault-webhook");
        // Silent answers outlast the worker's 1 s attempt timeout.
        saga.webhook = Some(WebhookReceiver::start(Duration::from_secs(2)).await);
        saga.start_all().await;
        let row = run_with_faults(
            &mut saga,
            51,
            "notification webhook times out or answers 503 for a third of the run",
            async |saga: &mut Saga| {
                tokio::time::sleep(run_time() / 5).await;
                let receiver = saga.webhook.as_ref().expect("the receiver");
                receiver.set_down(true);
                println!("{}: the webhook is down", saga.name);
                tokio::time::sleep((run_time() / 3).max(Duration::from_secs(10))).await;
                let index = saga.position("notification", 0);
                let metrics = saga.workers[index]
                    .get("/metrics")
                    .await
                    .map(|(_, body)| body)
                    .unwrap_or_default();
                assert_eq!(
                    gauge(&metrics, r#"notification_channel_up{channel="webhook"}"#),
                    Some(0.0),
                    "notification did not report its channel down"
                );
                let receiver = saga.webhook.as_ref().expect("the receiver");
                receiver.set_down(false);
                let since = Instant::now();
                println!("{}: the webhook is back", saga.name);
                vec![saga.delivered_all(index, since).await]
            },
        )
        .await;
        rows.push(row);
    }

    assert!(
        !rows.is_empty(),
        "no scenario ran: FAULT_SCENARIOS={:?} names none of kill, down, rolling, registry, poison, schema, broker, webhook",
        std::env::var("FAULT_SCENARIOS").unwrap_or_default()
    );
    let table = fault_table(&rows);
    println!("{table}");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults.md");
    std::fs::write(&path, &table).expect("the table file");
    println!("(also in {})", path.display());
    let failed: Vec<String> = rows
        .iter()
        .filter(|(_, figures, _)| !figures.clean())
        .map(|(scenario, figures, _)| format!("{scenario}: {figures:#?}"))
        .collect();
    assert!(
        failed.is_empty(),
        "scenarios with faults showing: {failed:#?}"
    );
}

/// The stages reading each input topic, by consumer group suffix (a stage of a staged worker is
/// `<worker>.<stage>`), as the workers' handlers declare them in `inputs()` (tests/catalogue.rs
/// checks those against the AsyncAPI document). A record rejected on a topic lands once in the
/// dead-letter topic of every stage reading it.
const READERS: [(&str, &[Topic]); 7] = [
    (
        "inventory.orders",
        &[
            Topic::StorefrontOrders,
            Topic::FulfilmentOrders,
            Topic::ShippingShipments,
            Topic::InventorySkuHolds,
        ],
    ),
    (
        "inventory.stock",
        &[
            Topic::WarehouseStockAdjustments,
            Topic::InventorySkuCommands,
        ],
    ),
    ("fraud.orders", &[Topic::StorefrontOrders]),
    ("fraud.customers", &[Topic::FraudCustomerOrders]),
    (
        "fulfilment",
        &[
            Topic::StorefrontOrders,
            Topic::InventoryReservations,
            Topic::Payments,
            Topic::FraudChecks,
        ],
    ),
    ("shipping", &[Topic::FulfilmentOrders]),
    (
        "notification",
        &[
            Topic::StorefrontOrders,
            Topic::Payments,
            Topic::FulfilmentOrders,
            Topic::ShippingShipments,
        ],
    ),
];

/// A topic partition and an offset in it.
type PartitionEnd = ((String, i32), i64);

/// A stage, a client of its group, and its input partitions with the ends to commit past.
type StageBacklog = (&'static str, Arc<BaseConsumer>, Arc<Vec<PartitionEnd>>);

/// Whether the group of `consumer` has committed, on every partition of `wanted`, an offset at
/// or past the one given (blocking: call off the runtime). A broker error reads as not yet.
fn committed_past(consumer: &BaseConsumer, wanted: &[PartitionEnd]) -> bool {
    let mut partitions = TopicPartitionList::new();
    for ((topic, partition), _) in wanted {
        partitions.add_partition(topic, *partition);
    }
    let Ok(committed) = consumer.committed_offsets(partitions, Duration::from_secs(10)) else {
        return false;
    };
    wanted.iter().all(|((topic, partition), end)| {
        let offset = committed
            .find_partition(topic, *partition)
            .map(|element| element.offset());
        match offset {
            Some(Offset::Offset(offset)) => offset >= *end,
            // Nothing committed is caught up only where there is nothing to read.
            _ => *end == 0,
        }
    })
}

/// Every topic some stage reads.
fn read_topics() -> BTreeSet<Topic> {
    READERS
        .iter()
        .flat_map(|(_, inputs)| inputs.iter().copied())
        .collect()
}

/// The dead letters the run's poison must leave, per dead-letter topic.
fn expected_dead_letters(saga: &Saga) -> BTreeMap<String, i64> {
    READERS
        .iter()
        .filter_map(|(stage, inputs)| {
            let count: i64 = inputs
                .iter()
                .filter_map(|topic| saga.poisoned.get(&saga.topic(*topic)))
                .sum();
            (count > 0).then(|| (format!("{}-{stage}.dlq", saga.name), count))
        })
        .collect()
}

/// Injects `per_topic` poison records into every topic a worker reads, spread over the run,
/// cycling through three kinds: bytes that are not Confluent framing, a frame naming a schema
/// id the registry does not have, and a schema-valid event of one of the topic's types that
/// breaks the contract's rules (proptest's arbitrary events, kept when `validate` refuses
/// them: negative or zero quantities, unknown currencies and countries, no lines, blank ids).
/// And `per_topic` orders, each paid, for a SKU inventory never heard of: valid events, which
/// must end cancelled out of stock like a discontinued product's.
async fn inject_poison(saga: &mut Saga, per_topic: usize) {
    use proptest::strategy::{Strategy as _, ValueTree as _};
    use rand::{Rng as _, SeedableRng as _};
    use rdkafka::producer::FutureRecord;

    let codec = codec(saga).await;
    let producer = retail_integration_tests::producer_on(&saga.cluster.bootstrap);
    let topics = read_topics();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let arbitrary = retail_events::arbitrary_event();
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let gap = run_time() / u32::try_from(per_topic + 1).expect("a small count");
    let send = async |topic: &str, key: &str, payload: &[u8]| {
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(error, _)| panic!("injecting into {topic}: {error}"));
    };
    for round in 0..per_topic {
        tokio::time::sleep(gap).await;
        for (index, topic) in topics.iter().enumerate() {
            let payload = match (round + index) % 3 {
                0 => {
                    let mut garbage = vec![0_u8; rng.random_range(1..64)];
                    rng.fill(&mut garbage[..]);
                    garbage[0] = rng.random_range(1..=u8::MAX);
                    garbage
                }
                1 => {
                    let mut frame = vec![0_u8];
                    frame.extend((2_000_000_000_u32 + round as u32).to_be_bytes());
                    frame.extend((0..16).map(|_| rng.random::<u8>()));
                    frame
                }
                _ => {
                    let event = loop {
                        let event = arbitrary
                            .new_tree(&mut runner)
                            .expect("an arbitrary event")
                            .current();
                        if event.descriptor().topic == *topic && event.validate().is_err() {
                            break event;
                        }
                    };
                    codec.encode_to_vec(&event).expect("encodes")
                }
            };
            let name = saga.topic(*topic);
            send(&name, &format!("poison-{round}"), &payload).await;
            *saga.poisoned.entry(name).or_default() += 1;
        }
        let (placed, paid, summary) = unknown_sku_order(round);
        for event in [placed, paid] {
            let topic = saga.topic(event.descriptor().topic);
            let payload = codec.encode_to_vec(&event).expect("encodes");
            send(&topic, event.key(), &payload).await;
        }
        saga.extra_orders.push(summary);
    }
    println!(
        "{}: injected {} poison records into each of {} topics, and {per_topic} orders for unknown SKUs",
        saga.name,
        per_topic,
        topics.len()
    );
}

/// A paid order for one unit of a SKU inventory never stocked, and how it must end.
fn unknown_sku_order(number: usize) -> (Event, Event, OrderSummary) {
    use retail_events::common::{Address, Customer, DeliverySpeed, Money, StockLine};
    use retail_events::payments::{PaymentAuthorized, PaymentMethod};
    use retail_events::storefront::{OrderLine, OrderPlaced};
    use retail_events::{Envelope, Timestamp};
    use retail_simulator::{Category, PaymentSent};

    let order_id = format!("unknown-sku-order-{number}");
    let customer_id = format!("unknown-sku-customer-{number}");
    let sku = format!("UNKNOWN-SKU-{number}");
    let now = Timestamp::now();
    let euros = |amount_minor| Money {
        amount_minor,
        currency: "EUR".into(),
    };
    let address = Address {
        recipient_name: "Anna Andersson".into(),
        line1: "Storgatan 1".into(),
        line2: None,
        city: "Stockholm".into(),
        postal_code: "111 22".into(),
        region: None,
        country_code: "SE".into(),
    };
    let placed = OrderPlaced {
        envelope: Envelope::originating::<OrderPlaced>(order_id.clone(), "storefront", now),
        order_id: order_id.clone(),
        customer: Customer {
            customer_id: customer_id.clone(),
            email: format!("{customer_id}@example.com"),
            full_name: "Anna Andersson".into(),
            // An established customer: nothing for fraud to flag.
            customer_since: Timestamp::from_micros(now.as_micros() - 3 * 365 * 86_400_000_000),
        },
        lines: vec![OrderLine {
            line_number: 1,
            sku: sku.clone(),
            product_name: "A product nobody stocks".into(),
            quantity: 1,
            unit_price: euros(1_500),
            unit_weight_grams: 200,
        }],
        order_total: euros(1_500),
        shipping_address: address.clone(),
        billing_address: address,
        delivery_speed: DeliverySpeed::Standard,
    };
    let paid = PaymentAuthorized {
        envelope: Envelope::originating::<PaymentAuthorized>(order_id.clone(), "payments", now),
        order_id: order_id.clone(),
        payment_id: format!("unknown-sku-payment-{number}"),
        amount: euros(1_500),
        method: PaymentMethod::Card,
        authorization_code: "AUTH-1".into(),
    };
    let expected = Expected::Cancelled {
        reason: CancellationReason::OutOfStock,
    };
    let summary = OrderSummary {
        order_id,
        customer_id,
        category: Category::OutOfStock,
        expected,
        lines: vec![StockLine { sku, quantity: 1 }],
        payment: PaymentSent::Authorized,
        expected_notifications: retail_simulator::summary::expected_notifications(
            expected,
            PaymentSent::Authorized,
        ),
    };
    (placed.into(), paid.into(), summary)
}

/// Whether the suite runs scenario `name`: `FAULT_SCENARIOS` lists the ones to run, separated
/// by commas (kill, down, rolling, registry, poison, schema, broker); unset, all of them.
fn selected(name: &str) -> bool {
    std::env::var("FAULT_SCENARIOS").map_or(true, |names| {
        names.split(',').any(|wanted| wanted.trim() == name)
    })
}

/// How long the simulator sends orders (at 50 per second).
fn run_time() -> Duration {
    Duration::from_millis(orders_per_run() * 20)
}

/// One scenario's line of the table: what was injected, the figures, each restart's recovery.
type ScenarioRow = (&'static str, Figures, Vec<Option<Duration>>);

/// Runs a scenario: `faults` injects them and returns the recovery time of each restart.
async fn run_with_faults(
    saga: &mut Saga,
    seed: u64,
    scenario: &'static str,
    faults: impl AsyncFnOnce(&mut Saga) -> Vec<Option<Duration>>,
) -> ScenarioRow {
    let mut recovery = Vec::new();
    let (summary, observed, stock, dead) = run(saga, seed, async |saga: &mut Saga| {
        recovery = faults(saga).await;
    })
    .await;
    let figures = figures(saga, &summary, &observed, &stock, &dead);
    println!("{}: {figures:?}; recovery {recovery:?}", saga.name);
    (scenario, figures, recovery)
}

/// The figures of each scenario as a Markdown table.
fn fault_table(rows: &[ScenarioRow]) -> String {
    let mut table = String::from(
        "| scenario | orders | lost | without a terminal state | two terminal states | wrong outcome | oversold units | unbalanced SKUs | duplicate notifications | missing notifications | dead-lettered (expected) | recovery, slowest restart |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (scenario, figures, recovery) in rows {
        let slowest = if recovery.iter().any(Option::is_none) {
            "not within 120 s".to_owned()
        } else {
            recovery
                .iter()
                .flatten()
                .max()
                .map_or("-".to_owned(), |slowest| {
                    format!("{:.1} s", slowest.as_secs_f64())
                })
        };
        table.push_str(&format!(
            "| {scenario} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {slowest} |\n",
            figures.orders,
            figures.lost,
            figures.without_terminal,
            figures.doubled,
            figures.wrong_outcome,
            figures.oversold_units,
            figures.unbalanced_skus,
            figures.duplicate_notifications,
            figures.missing_notifications + figures.unexpected_notifications,
            figures.dead_lettered,
            figures.dead_letters_expected,
        ));
    }
    table
}

/// The value of one series of a scrape, named with its labels as exported; `None` if absent.
fn gauge(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
