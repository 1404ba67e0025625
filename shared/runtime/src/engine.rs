//! The processing thread: consume → decode → handle → produce, at least once, with
//! effectively-once effects.
//!
//! One OS thread owns the consumer and does all the work, so no blocking librdkafka call ever
//! runs on the async runtime and records of one partition are handled strictly in order. Per
//! batch (up to `batch_size` records or `batch_wait`), every input is handled and its outputs,
//! changelog record or dead letter are produced without waiting; the producer's acknowledgements
//! arrive on librdkafka's thread. A batch's input offsets are stored only once everything it
//! produced is acknowledged ([`InFlight`]); librdkafka commits stored offsets every
//! `commit_interval`, and the engine commits synchronously when partitions are revoked and at
//! shutdown. Nothing is committed per message.
//!
//! Rebalances run inside `poll`, on this thread: on revoke the engine waits for its in-flight
//! records, stores and commits their offsets and drops the partitions' state; on assign it
//! restores the partitions' state from the changelog before `poll` returns a single record of
//! them.
//!
//! In exactly-once mode ([`EngineConfig::transactions`]) each batch is one Kafka transaction
//! ([`Transactions`]): the first record produced opens it, and the end of the batch sends the
//! batch's input offsets into it and commits it, so outputs, changelog records, dead letters and
//! offsets become visible to `read_committed` consumers together. Nothing stores or commits
//! offsets any other way. A revoke commits the open transaction inside the callback (KIP-447:
//! its offsets carry the group generation, so a zombie's commit is fenced). An aborted
//! transaction rewinds every assigned partition to its committed offset and restores its state
//! again, so the batch is handled anew from what was committed. A fatal transactional error
//! (fenced by a newer instance) stops the worker.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, Statistics, TopicPartitionList};
use retail_codec::{Codec, DecodeError};
use retail_events::{Event, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::dead_letter::DeadLetter;
use crate::error::RuntimeError;
use crate::handler::{Context, Handler, HandlerError};
use crate::http::Health;
use crate::inflight::{InFlight, Offsets};
use crate::restore;
use crate::retry::Backoff;
use crate::state::{Applied, ChangelogRecord, DedupPolicy, PartitionStore, Seen};
use crate::telemetry::Telemetry;
use crate::topics::TopicNames;
use crate::trace::TraceParent;
use crate::transaction::{Finished, Transactions, TxnState};

/// Header naming an output's event type, so consumers can route without decoding.
pub const EVENT_TYPE_HEADER: &str = "event_type";

/// How often rings are pruned and deleted keys tombstoned.
const EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the open-work gauges are refreshed.
const OPEN_WORK_INTERVAL: Duration = Duration::from_secs(2);

/// Most timers fired per batch (the rest fire in the next ones).
const TIMERS_PER_BATCH: usize = 1_000;

/// How long a timer whose handler failed waits before it is tried again.
const TIMER_RETRY: Duration = Duration::from_secs(1);

/// A state's timer due time, from the handler (for the stores, which do not know it).
type TimerOf<S> = Arc<dyn Fn(&S) -> Option<Timestamp> + Send + Sync>;

/// What the engine needs, resolved from the runtime configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker name: `producer` of output envelopes, `dlq.worker`, metric label.
    pub worker: String,
    /// Topic names.
    pub names: TopicNames,
    /// Input topics on the broker.
    pub inputs: Vec<String>,
    /// Consumer settings (group, offsets stored by us, committed by librdkafka).
    pub consumer: ClientConfig,
    /// Producer settings (idempotent, acks=all).
    pub producer: ClientConfig,
    /// Connection settings for the restore consumer.
    pub restore_client: ClientConfig,
    /// Changelog topic and ring bounds; `None` for a stateless handler.
    pub store: Option<(String, DedupPolicy)>,
    /// Records per batch.
    pub batch_size: usize,
    /// Longest wait to fill a batch.
    pub batch_wait: Duration,
    /// Inputs processed but not yet acknowledged before the engine waits.
    pub max_in_flight: usize,
    /// Time allowed to drain at shutdown and on revoke.
    pub drain_deadline: Duration,
    /// Retries of retriable failures.
    pub backoff: Backoff,
    /// Longest time a restore may take.
    pub restore_timeout: Duration,
    /// At least once, how often the changed keys' state is written to the changelog: a key
    /// changed by many inputs meanwhile is written once (as Kafka Streams' record cache, flushed
    /// at each commit). Offsets wait for it.
    pub state_flush_interval: Duration,
    /// Exactly-once mode (the producer configuration carries a `transactional.id`); `None`
    /// for at-least-once.
    pub transactions: Option<TransactionSettings>,
}

/// How the exactly-once mode's transactional calls behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionSettings {
    /// How long each blocking transactional call may take.
    pub timeout: Duration,
    /// Further attempts of a call that timed out.
    pub max_retries: u32,
}

/// The exactly-once mode's transaction machine around the shared producer.
type Txn = Transactions<Arc<ThreadedProducer<DeliveryContext>>>;

/// An encoded output, ready to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Output {
    topic: String,
    key: String,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

/// A batch being filled: its sequence number and the offsets its inputs reached.
#[derive(Debug)]
struct OpenBatch {
    seq: u64,
    inputs: usize,
    offsets: Offsets,
}

/// An ended batch (at least once) that waits for the changelog records of the state it
/// changed, which wait until its outputs are acknowledged: an input is listed as applied only
/// once its outputs are durable (see [`crate::state`]).
///
/// Parked batches form groups: a batch whose `flush` is set ends one, which is every batch back
/// to the previous group's end. A group's records are one per key its batches changed, taken
/// when it was closed ([`Shared::close_group`]).
#[derive(Debug)]
struct Parked {
    seq: u64,
    inputs: usize,
    offsets: Offsets,
    /// On the last batch of a group: the group's changelog records.
    flush: Option<Vec<(i32, ChangelogRecord)>>,
}

/// The parked batches and when the last group was closed.
#[derive(Debug)]
struct ParkedBatches {
    batches: VecDeque<Parked>,
    last_flush: Instant,
}

/// State shared by the processing loop and the consumer's rebalance callbacks (which run on the
/// same thread, inside `poll`; the mutexes are never contended).
struct Shared<S> {
    config: EngineConfig,
    stores: Mutex<HashMap<i32, PartitionStore<S>>>,
    inflight: Arc<InFlight>,
    /// The producer; here because a revoke (inside `poll`) must send deferred outputs.
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    /// The transaction machine, in exactly-once mode.
    txn: Option<Mutex<Txn>>,
    open_batch: Mutex<Option<OpenBatch>>,
    /// At least once: ended batches whose changelog records wait for their outputs'
    /// acknowledgements, oldest first (see [`Shared::park_open_batch`]).
    parked: Mutex<ParkedBatches>,
    telemetry: Telemetry,
    health: Health,
    /// An error raised inside a callback, surfaced by the loop.
    fatal: Mutex<Option<RuntimeError>>,
    /// The handler's timer of a state, to index timers after a restore.
    timer_of: TimerOf<S>,
    /// Since when a state's work is open ([`Handler::open_since`]).
    open_of: TimerOf<S>,
    /// How far each input partition has been handled: the Kafka timestamp (microseconds) of
    /// the last record handled, and the consumer lag from the latest statistics. A timer due at
    /// `T` fires only once every input partition of its key's partition is handled up to `T`
    /// or has nothing left to read: a worker that falls behind (or comes back after an outage)
    /// must not time out an order whose answers are waiting in its own backlog.
    progress: Mutex<HashMap<(String, i32), Progress>>,
}

/// How far one input partition has been handled (see [`Shared::progress`]).
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Timestamp of the last record handled, in microseconds; `None` before the first.
    last_handled: Option<i64>,
    /// Records not yet consumed, from the last statistics; `None` before the first.
    lag: Option<i64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S> Shared<S> {
    fn store_name(&self) -> Option<&str> {
        self.config
            .store
            .as_ref()
            .map(|(changelog, _)| changelog.as_str())
    }

    fn set_fatal(&self, error: RuntimeError) {
        tracing::error!(%error, "fatal error in a consumer callback");
        lock(&self.fatal).get_or_insert(error);
    }

    fn send_output(&self, seq: u64, output: &Output) -> Result<(), RuntimeError> {
        let headers = owned_headers(
            output
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), Some(value.as_slice()))),
        );
        let record = BaseRecord::with_opaque_to(&output.topic, seq as usize)
            .key(output.key.as_bytes())
            .payload(output.payload.as_slice())
            .headers(headers);
        // The record timestamp is left to the producer (now): were it the handler's clock, every
        // event of a saga would carry its first event's time, hop after hop.
        self.send(seq, record)?;
        let event_type = output
            .headers
            .iter()
            .find(|(name, _)| name == EVENT_TYPE_HEADER)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
            .unwrap_or("unknown");
        self.telemetry.produced(&output.topic, event_type);
        Ok(())
    }

    fn send_changelog(
        &self,
        seq: u64,
        partition: i32,
        record: &ChangelogRecord,
    ) -> Result<(), RuntimeError> {
        let Some((changelog, _)) = &self.config.store else {
            return Ok(());
        };
        let base = BaseRecord::with_opaque_to(changelog, seq as usize)
            .partition(partition)
            .key(record.key.as_bytes());
        let base = match &record.value {
            Some(value) => base.payload(value.as_slice()),
            None => base,
        };
        self.send(seq, base)
    }

    /// Enqueues a record for batch `seq`, waiting while librdkafka's queue is full.
    fn send<K, P>(&self, seq: u64, record: BaseRecord<'_, K, P, usize>) -> Result<(), RuntimeError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        if let Some(txn) = &self.txn {
            lock(txn).ensure_open()?;
        }
        self.inflight.expect(seq);
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    self.inflight.wait(Duration::from_millis(5));
                }
                Err((source, _)) => {
                    self.inflight.unexpect(seq);
                    return Err(RuntimeError::kafka("producing", source));
                }
            }
        }
    }

    /// Seals the batch being filled, if any, so its offsets can complete.
    fn seal_open_batch(&self) {
        if let Some(batch) = lock(&self.open_batch).take() {
            self.inflight.seal(batch.seq, batch.inputs, batch.offsets);
        }
    }
}

impl<S> Shared<S>
where
    S: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static,
{
    /// The changelog records of the keys changed since the last call, one per key however many
    /// inputs changed it.
    fn take_changes(&self) -> Vec<(i32, ChangelogRecord)> {
        lock(&self.stores)
            .iter_mut()
            .flat_map(|(partition, store)| {
                store
                    .take_changes()
                    .into_iter()
                    .map(move |record| (*partition, record))
            })
            .collect()
    }

    /// Ends the open batch (at least once). A batch that changed no state, with nothing parked
    /// before it, is sealed at once. Otherwise it is parked, and sealed once the changelog
    /// records of its group are sent ([`Self::send_parked`]), so its offsets wait for them.
    /// Processing goes on meanwhile: the next batch waits neither for this one's
    /// acknowledgements nor for its state to be written. `close` closes the group now; otherwise
    /// it is closed once the flush interval has passed.
    fn park_open_batch(&self, close: bool) -> Result<(), RuntimeError> {
        let Some(batch) = lock(&self.open_batch).take() else {
            // The changes not yet taken belong to the parked batches of the open group.
            let open_group = lock(&self.parked)
                .batches
                .back()
                .is_some_and(|last| last.flush.is_none());
            if !open_group && self.has_changes() {
                return Err(RuntimeError::Fatal {
                    reason: "changelog records without an open batch".to_owned(),
                });
            }
            if close && open_group {
                self.close_group();
            }
            return Ok(());
        };
        let mut parked = lock(&self.parked);
        if parked.batches.is_empty() && !self.has_changes() {
            drop(parked);
            self.inflight.seal(batch.seq, batch.inputs, batch.offsets);
            return Ok(());
        }
        parked.batches.push_back(Parked {
            seq: batch.seq,
            inputs: batch.inputs,
            offsets: batch.offsets,
            flush: None,
        });
        let due = close || parked.last_flush.elapsed() >= self.config.state_flush_interval;
        drop(parked);
        if due {
            self.close_group();
        }
        Ok(())
    }

    /// True if some key changed since its last changelog record was taken.
    fn has_changes(&self) -> bool {
        lock(&self.stores).values().any(PartitionStore::has_changes)
    }

    /// Closes the group of the parked batches not yet in one: takes the changelog records of
    /// the keys they changed.
    fn close_group(&self) {
        let records = self.take_changes();
        let mut parked = lock(&self.parked);
        parked.last_flush = Instant::now();
        if let Some(last) = parked.batches.back_mut()
            && last.flush.is_none()
        {
            last.flush = Some(records);
        }
    }

    /// Closes the open group if the flush interval has passed, or with `now` at once.
    fn close_group_if_due(&self, now: bool) {
        let due = {
            let parked = lock(&self.parked);
            parked
                .batches
                .back()
                .is_some_and(|last| last.flush.is_none())
                && (now || parked.last_flush.elapsed() >= self.config.state_flush_interval)
        };
        if due {
            self.close_group();
        }
    }

    /// Sends the changelog records of closed groups whose batches' outputs are all
    /// acknowledged, oldest group first (a key's records stay in order), and seals their
    /// batches. The records are counted against the group's first batch, so no offset of the
    /// group is stored before they are acknowledged (offsets are released in batch order).
    /// Stops at the first group still waiting, or with `deadline` waits for each until then.
    fn send_parked(&self, deadline: Option<Instant>) -> Result<(), RuntimeError> {
        loop {
            let (seqs, records) = {
                let mut parked = lock(&self.parked);
                let Some(end) = parked
                    .batches
                    .iter()
                    .position(|batch| batch.flush.is_some())
                else {
                    return Ok(());
                };
                let seqs: Vec<u64> = parked
                    .batches
                    .range(..=end)
                    .map(|batch| batch.seq)
                    .collect();
                let records = parked.batches[end].flush.take().unwrap_or_default();
                (seqs, records)
            };
            let wait_until = deadline.unwrap_or_else(Instant::now);
            let mut settled = true;
            for seq in &seqs {
                if !self.inflight.wait_batch(*seq, wait_until)? {
                    settled = false;
                    break;
                }
            }
            if !settled {
                if let Some(last) = lock(&self.parked).batches.get_mut(seqs.len() - 1) {
                    last.flush = Some(records);
                }
                return match deadline {
                    None => Ok(()),
                    Some(_) => Err(RuntimeError::Fatal {
                        reason: format!(
                            "outputs not acknowledged within {:?}; stopping before recording their inputs as applied",
                            self.config.drain_deadline
                        ),
                    }),
                };
            }
            let first = seqs[0];
            for (partition, record) in &records {
                self.send_changelog(first, *partition, record)?;
            }
            let group: Vec<Parked> = lock(&self.parked).batches.drain(..seqs.len()).collect();
            for batch in group {
                self.inflight.seal(batch.seq, batch.inputs, batch.offsets);
            }
        }
    }

    /// Inputs of parked batches (handled, their changelog records not yet sent).
    fn parked_inputs(&self) -> usize {
        lock(&self.parked)
            .batches
            .iter()
            .map(|parked| parked.inputs)
            .sum()
    }

    /// Makes the state changes so far durable after the outputs they follow: at least once,
    /// ends the open batch and sends every parked changelog record, waiting up to the drain
    /// deadline for acknowledgements; exactly once, sends the open batch's changelog records at
    /// once (they commit together with the outputs, in the same transaction).
    fn flush_deferred(&self) -> Result<(), RuntimeError> {
        if self.txn.is_none() {
            self.park_open_batch(true)?;
            return self.send_parked(Some(Instant::now() + self.config.drain_deadline));
        }
        let records = self.take_changes();
        if records.is_empty() {
            return Ok(());
        }
        let Some(seq) = lock(&self.open_batch).as_ref().map(|batch| batch.seq) else {
            return Err(RuntimeError::Fatal {
                reason: "changelog records without an open batch".to_owned(),
            });
        };
        for (partition, record) in &records {
            self.send_changelog(seq, *partition, record)?;
        }
        Ok(())
    }

    /// Forgets the state changes not yet written (their batch was aborted).
    fn discard_changes(&self) {
        for store in lock(&self.stores).values_mut() {
            store.discard_changes();
        }
    }

    /// Restores the state of `partitions` from the changelog (replacing what is held) and
    /// prunes the rings below the committed offsets.
    ///
    /// The committed offsets are read first: a `read_committed` consumer's offset fetch waits
    /// for transactional offset commits still pending (KIP-447), so by the time the changelog is
    /// read, the transaction that wrote it is settled.
    fn restore_partitions<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &TopicPartitionList,
    ) -> Result<(), RuntimeError> {
        let Some((changelog, policy)) = &self.config.store else {
            return Ok(());
        };
        let committed = self.committed(consumer, partitions)?;
        let mut numbers: Vec<i32> = partitions
            .elements()
            .iter()
            .map(|element| element.partition())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        let restored = restore::restore::<S>(
            &self.config.restore_client,
            changelog,
            &numbers,
            *policy,
            self.config.restore_timeout,
        )?;
        let mut stores = lock(&self.stores);
        for (partition, (store, stats)) in restored {
            self.telemetry.state_restored(
                changelog,
                partition,
                stats.records,
                stats.bytes,
                stats.elapsed,
            );
            self.telemetry
                .state_entries(changelog, partition, store.len());
            tracing::info!(
                changelog = %changelog,
                partition,
                records = stats.records,
                bytes = stats.bytes,
                keys = store.len(),
                elapsed_ms = stats.elapsed.as_millis() as u64,
                "state restored"
            );
            let mut store = store;
            store.rebuild_indexes(
                |state| (self.timer_of)(state),
                |state| (self.open_of)(state),
            );
            stores.insert(partition, store);
        }
        // Ring entries below the committed offsets no longer need their outputs.
        for element in committed.elements() {
            if let (Offset::Offset(next), Some(store)) =
                (element.offset(), stores.get_mut(&element.partition()))
            {
                store.committed(element.topic(), next);
            }
        }
        Ok(())
    }

    /// See [`handled_up_to`].
    fn handled_up_to(&self, partition: i32, now: Timestamp) -> Timestamp {
        handled_up_to(&self.config.inputs, &lock(&self.progress), partition, now)
    }

    /// Exactly-once: sends the open batch's changelog records and commits the open transaction
    /// with the offsets the batch reached so far (the batch stays open, empty, for what follows).
    /// `Committed` without a call when no transaction is open, and always in at-least-once mode.
    fn finish_transaction(
        &self,
        group: Option<ConsumerGroupMetadata>,
    ) -> Result<Finished, RuntimeError> {
        let Some(txn) = &self.txn else {
            return Ok(Finished::Committed);
        };
        self.flush_deferred()?;
        let offsets = lock(&self.open_batch)
            .as_mut()
            .map(|batch| {
                batch.inputs = 0;
                std::mem::take(&mut batch.offsets)
            })
            .unwrap_or_default();
        let mut txn = lock(txn);
        if txn.state() != TxnState::Open {
            if offsets.is_empty() {
                return Ok(Finished::Committed);
            }
            // Inputs that produced nothing (skipped duplicates, events a handler ignores): a
            // transaction of offsets alone moves the group past them.
            txn.ensure_open()?;
        }
        let Some(group) = group else {
            return Err(RuntimeError::Fatal {
                reason: "no consumer group metadata to commit the offsets with".to_owned(),
            });
        };
        let started = Instant::now();
        let finished = txn.finish(&offsets, &group)?;
        drop(txn);
        // The transaction, not the ledger, decided what is durable.
        self.inflight.clear();
        match &finished {
            Finished::Committed => {
                self.telemetry.transaction("commit", started.elapsed());
                let mut stores = lock(&self.stores);
                for ((topic, partition), next) in &offsets {
                    if let Some(store) = stores.get_mut(partition) {
                        store.committed(topic, *next);
                    }
                }
            }
            Finished::Aborted { reason } => {
                self.telemetry.transaction("abort", started.elapsed());
                tracing::warn!(reason = %reason, partitions = offsets.len(), "transaction aborted; its inputs are handled again");
            }
        }
        Ok(finished)
    }

    fn committed<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &TopicPartitionList,
    ) -> Result<TopicPartitionList, RuntimeError> {
        consumer
            .committed_offsets(partitions.clone(), self.config.restore_timeout)
            .map_err(|source| RuntimeError::kafka("reading the committed offsets", source))
    }

    /// After an aborted transaction: drops what the batch left, moves every assigned partition
    /// back to its committed offset (records already fetched beyond it are discarded) and
    /// restores the state as of that commit.
    fn rewind<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> Result<(), RuntimeError> {
        self.discard_changes();
        if let Some(batch) = lock(&self.open_batch).as_mut() {
            batch.inputs = 0;
            batch.offsets.clear();
        }
        let assignment = consumer
            .assignment()
            .map_err(|source| RuntimeError::kafka("reading the assignment", source))?;
        if assignment.count() == 0 {
            return Ok(());
        }
        let started = Instant::now();
        self.restore_partitions(consumer, &assignment)?;
        let committed = self.committed(consumer, &assignment)?;
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(next) => Offset::Offset(next),
                // Nothing committed yet: `auto.offset.reset=earliest`.
                _ => Offset::Beginning,
            };
            consumer
                .seek(
                    element.topic(),
                    element.partition(),
                    offset,
                    self.config.restore_timeout,
                )
                .map_err(|source| RuntimeError::kafka("rewinding after an abort", source))?;
        }
        tracing::info!(
            partitions = assignment.count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rewound to the committed offsets"
        );
        Ok(())
    }
}

/// The consumer's context: rebalances, commits and statistics.
struct WorkerConsumerContext<S> {
    shared: Arc<Shared<S>>,
}

impl<S: Send + 'static> ClientContext for WorkerConsumerContext<S> {
    fn stats(&self, statistics: Statistics) {
        self.shared.telemetry.record_statistics(&statistics);
        let mut progress = lock(&self.shared.progress);
        for (topic, stats) in &statistics.topics {
            for partition in stats.partitions.values() {
                if partition.partition >= 0 && partition.consumer_lag >= 0 {
                    progress
                        .entry((topic.clone(), partition.partition))
                        .or_default()
                        .lag = Some(partition.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "consumer error");
    }
}

impl<S> ConsumerContext for WorkerConsumerContext<S>
where
    S: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static,
{
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => self.revoke(consumer, partitions),
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                self.shared.telemetry.rebalance("error");
                tracing::warn!(%error, "rebalance error");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.assign(consumer, partitions);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.shared.telemetry.committed("ok");
                let mut stores = lock(&self.shared.stores);
                for element in offsets.elements() {
                    if let (Offset::Offset(next), Some(store)) =
                        (element.offset(), stores.get_mut(&element.partition()))
                    {
                        store.committed(element.topic(), next);
                    }
                }
            }
            // Nothing was stored since the last commit: not an error.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                self.shared.telemetry.committed("error");
                tracing::warn!(%error, "offset commit failed; it is retried at the next interval")
            }
        }
    }
}

impl<S> WorkerConsumerContext<S>
where
    S: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static,
{
    /// Partitions are being taken away: make everything produced for them durable, commit their
    /// offsets, and drop their state, before another member restores it.
    fn revoke(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        let shared = &self.shared;
        shared.telemetry.rebalance("revoke");
        shared.health.set_partitions_ready(false);
        if shared.txn.is_some() {
            // The group generation is still the old one here, so this commit is accepted; once
            // the rebalance completes, a commit of this member's would be fenced.
            match shared.finish_transaction(consumer.group_metadata()) {
                Ok(Finished::Committed) => {}
                Ok(Finished::Aborted { .. }) => {
                    // The open batch is dropped; its inputs go to the next owner uncommitted.
                    shared.discard_changes();
                }
                Err(error) => shared.set_fatal(error),
            }
        } else {
            self.commit_on_revoke(consumer);
        }
        let mut stores = lock(&shared.stores);
        for element in partitions.elements() {
            if stores.remove(&element.partition()).is_some()
                && let Some(store) = shared.store_name()
            {
                shared
                    .telemetry
                    .state_entries(store, element.partition(), 0);
            }
            shared
                .telemetry
                .remove_consumer_lag(element.topic(), element.partition());
        }
        tracing::info!(partitions = partitions.count(), "partitions revoked");
    }

    /// At least once: makes everything produced durable, stores the offsets it covers and
    /// commits them.
    fn commit_on_revoke(&self, consumer: &BaseConsumer<Self>) {
        let shared = &self.shared;
        if let Err(error) = shared.flush_deferred() {
            shared.set_fatal(error);
        }
        shared.seal_open_batch();
        let deadline = Instant::now() + shared.config.drain_deadline;
        match shared.inflight.wait_all(deadline) {
            Ok(reached) => {
                if let Err(error) = store_offsets(consumer, &reached) {
                    shared.set_fatal(error);
                }
            }
            Err(failed) => shared.set_fatal(RuntimeError::Delivery(failed)),
        }
        let started = Instant::now();
        let outcome = match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => "ok",
            Err(error) => {
                tracing::warn!(%error, "commit on revoke failed; the next owner re-processes (deduplicated)");
                "error"
            }
        };
        shared.telemetry.commit(outcome, started.elapsed());
    }

    /// Partitions were assigned: restore their state before any of their records is handled.
    fn assign(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        let shared = &self.shared;
        shared.telemetry.rebalance("assign");
        shared.telemetry.partitions_assigned(partitions.count());
        if let Err(error) = shared.restore_partitions(consumer, partitions) {
            shared.set_fatal(error);
            return;
        }
        shared.health.set_partitions_ready(true);
        tracing::info!(partitions = partitions.count(), "partitions assigned");
    }
}

/// Acknowledgements of produced records, counted per batch.
struct DeliveryContext {
    inflight: Arc<InFlight>,
    /// Exactly-once: a failed delivery fails the transaction's commit, which aborts it and
    /// rewinds; it is not the ledger's business (and an abort fails every record it purges).
    transactional: bool,
}

impl ClientContext for DeliveryContext {
    /// The consumer's statistics carry the lag; the producer's are not used (the default
    /// implementation would log them all at info level).
    fn stats(&self, _statistics: Statistics) {}
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let result = match result {
            Ok(_) => Ok(()),
            Err((error, message)) => {
                let failure = format!(
                    "to {} partition {}: {error}",
                    message.topic(),
                    message.partition()
                );
                if self.transactional {
                    tracing::debug!(failure, "record of a transaction not delivered");
                    Ok(())
                } else {
                    Err(failure)
                }
            }
        };
        self.inflight.acknowledge(seq as u64, result);
    }
}

/// The time up to which partition `partition` of every input topic is handled, capped at
/// `now`: a partition with nothing left to read (lag 0 in the last statistics) does not hold
/// timers back; one that is behind, or not yet known to be caught up, holds them at the
/// timestamp of its last handled record (at the start of time before its first).
fn handled_up_to(
    inputs: &[String],
    progress: &HashMap<(String, i32), Progress>,
    partition: i32,
    now: Timestamp,
) -> Timestamp {
    let mut reached = now.as_micros();
    for input in inputs {
        let state = progress
            .get(&(input.clone(), partition))
            .copied()
            .unwrap_or_default();
        if state.lag != Some(0) {
            reached = reached.min(state.last_handled.unwrap_or(0));
        }
    }
    Timestamp::from_micros(reached)
}

/// Stores `offsets` (next offsets to consume) for librdkafka to commit.
fn store_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &Offsets,
) -> Result<(), RuntimeError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))
            .map_err(|source| RuntimeError::kafka("building the offsets to store", source))?;
    }
    match consumer.store_offsets(&list) {
        Ok(()) => Ok(()),
        // The partition was revoked meanwhile; its new owner takes over from the last commit.
        Err(KafkaError::StoreOffset(
            RDKafkaErrorCode::State | RDKafkaErrorCode::UnknownPartition,
        )) => Ok(()),
        Err(source) => Err(RuntimeError::kafka("storing offsets", source)),
    }
}

/// Why an input is dead-lettered.
struct Rejection {
    class: String,
    message: String,
    attempts: u32,
}

/// The processing thread.
pub struct Engine<H: Handler> {
    handler: Arc<H>,
    codec: Arc<Codec>,
    shared: Arc<Shared<H::State>>,
    consumer: BaseConsumer<WorkerConsumerContext<H::State>>,
    runtime: tokio::runtime::Handle,
    shutdown: CancellationToken,
    /// Jitter for retry back-off (a `RefCell`: records are handled through `&self` while the
    /// polled record borrows the consumer).
    rng: RefCell<StdRng>,
    /// When rings were last pruned.
    last_expire: Instant,
    /// When the open-work gauges were last refreshed.
    last_open_report: Instant,
}

impl<H: Handler> std::fmt::Debug for Engine<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("worker", &self.shared.config.worker)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Engine<H> {
    /// Creates the clients and subscribes. Call on the thread that will run [`Engine::run`].
    pub fn new(
        config: EngineConfig,
        handler: Arc<H>,
        codec: Arc<Codec>,
        telemetry: Telemetry,
        health: Health,
        runtime: tokio::runtime::Handle,
        shutdown: CancellationToken,
    ) -> Result<Self, RuntimeError> {
        let inflight = Arc::new(InFlight::new());
        let producer: Arc<ThreadedProducer<DeliveryContext>> = Arc::new(
            config
                .producer
                .create_with_context(DeliveryContext {
                    inflight: Arc::clone(&inflight),
                    transactional: config.transactions.is_some(),
                })
                .map_err(|source| RuntimeError::kafka("creating the producer", source))?,
        );
        let txn = match config.transactions {
            None => None,
            Some(settings) => {
                let mut txn = Transactions::new(
                    Arc::clone(&producer),
                    settings.timeout,
                    settings.max_retries,
                );
                // Fences any earlier instance with this `transactional.id` and settles what it
                // left open, before a record is read.
                txn.init()?;
                tracing::info!("exactly-once: transactions initialised");
                Some(Mutex::new(txn))
            }
        };
        let shared = Arc::new(Shared {
            stores: Mutex::new(HashMap::new()),
            inflight,
            producer,
            txn,
            open_batch: Mutex::new(None),
            parked: Mutex::new(ParkedBatches {
                batches: VecDeque::new(),
                last_flush: Instant::now(),
            }),
            telemetry,
            health,
            fatal: Mutex::new(None),
            timer_of: {
                let handler = Arc::clone(&handler);
                Arc::new(move |state: &H::State| handler.timer(state).map(|timer| timer.due))
            },
            open_of: {
                let handler = Arc::clone(&handler);
                Arc::new(move |state: &H::State| handler.open_since(state))
            },
            progress: Mutex::new(HashMap::new()),
            config,
        });
        let consumer: BaseConsumer<WorkerConsumerContext<H::State>> = shared
            .config
            .consumer
            .create_with_context(WorkerConsumerContext {
                shared: Arc::clone(&shared),
            })
            .map_err(|source| RuntimeError::kafka("creating the consumer", source))?;
        let inputs: Vec<&str> = shared.config.inputs.iter().map(String::as_str).collect();
        consumer
            .subscribe(&inputs)
            .map_err(|source| RuntimeError::kafka("subscribing to the inputs", source))?;
        Ok(Self {
            handler,
            codec,
            shared,
            consumer,
            runtime,
            shutdown,
            rng: RefCell::new(StdRng::from_os_rng()),
            last_expire: Instant::now(),
            last_open_report: Instant::now(),
        })
    }

    /// Runs until shutdown is requested (then drains, commits and leaves the group) or a fatal
    /// error occurs.
    pub fn run(mut self) -> Result<(), RuntimeError> {
        let result = self.process_until_shutdown();
        let drained = self.drain(result.is_ok());
        result.and(drained)
    }

    fn process_until_shutdown(&mut self) -> Result<(), RuntimeError> {
        tracing::info!(inputs = ?self.shared.config.inputs, "processing started");
        while !self.shutdown.is_cancelled() {
            self.check_fatal()?;
            self.release_completed()?;
            self.wait_for_room()?;
            self.process_batch()?;
            if self.last_expire.elapsed() >= EXPIRE_INTERVAL {
                self.expire()?;
            }
            if self.last_open_report.elapsed() >= OPEN_WORK_INTERVAL {
                self.report_open_work();
            }
        }
        Ok(())
    }

    fn check_fatal(&self) -> Result<(), RuntimeError> {
        if let Some(error) = lock(&self.shared.fatal).take() {
            return Err(error);
        }
        if let Some((code, reason)) = self.shared.producer.client().fatal_error() {
            return Err(RuntimeError::Fatal {
                reason: format!("producer: {code}: {reason}"),
            });
        }
        if let Some((code, reason)) = self.consumer.client().fatal_error() {
            return Err(RuntimeError::Fatal {
                reason: format!("consumer: {code}: {reason}"),
            });
        }
        Ok(())
    }

    /// Sends the changelog records whose batches' outputs are acknowledged, and stores the
    /// offsets of batches whose records are all acknowledged.
    fn release_completed(&self) -> Result<(), RuntimeError> {
        if self.shared.txn.is_some() {
            // Offsets move only inside transactions.
            return Ok(());
        }
        self.shared.close_group_if_due(false);
        self.shared.send_parked(None)?;
        let reached = self
            .shared
            .inflight
            .take_completed()
            .map_err(RuntimeError::Delivery)?;
        store_offsets(&self.consumer, &reached)?;
        self.shared.telemetry.in_flight(self.inputs_in_flight());
        Ok(())
    }

    /// Inputs handled whose effects are not all acknowledged yet.
    fn inputs_in_flight(&self) -> usize {
        self.shared.inflight.inputs_in_flight() + self.shared.parked_inputs()
    }

    /// Waits while too many inputs await acknowledgement.
    fn wait_for_room(&self) -> Result<(), RuntimeError> {
        while self.inputs_in_flight() >= self.shared.config.max_in_flight {
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            // Inputs waiting for their state to be written count too: write it now.
            self.shared.close_group_if_due(true);
            self.shared.inflight.wait(Duration::from_millis(10));
            self.release_completed()?;
        }
        Ok(())
    }

    fn process_batch(&mut self) -> Result<(), RuntimeError> {
        let seq = self.shared.inflight.open();
        *lock(&self.shared.open_batch) = Some(OpenBatch {
            seq,
            inputs: 0,
            offsets: Offsets::new(),
        });
        self.fire_timers(seq)?;
        let started = Instant::now();
        let mut handled = 0;
        while handled < self.shared.config.batch_size && !self.shutdown.is_cancelled() {
            let timeout = if handled == 0 {
                Duration::from_millis(100)
            } else {
                match self.shared.config.batch_wait.checked_sub(started.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break,
                }
            };
            let Some(polled) = self.consumer.poll(timeout) else {
                if handled == 0 {
                    break;
                }
                continue;
            };
            match polled {
                Ok(message) => {
                    // A callback may have failed inside poll (a restore): stop before handling.
                    self.check_fatal()?;
                    self.process(&message, seq)?;
                    handled += 1;
                }
                Err(error) => tracing::warn!(%error, "consume error"),
            }
        }
        if self.shared.txn.is_some() {
            let finished = self
                .shared
                .finish_transaction(self.consumer.group_metadata())?;
            lock(&self.shared.open_batch).take();
            if let Finished::Aborted { .. } = finished {
                self.shared.rewind(&self.consumer)?;
            }
        } else {
            self.shared.park_open_batch(false)?;
            self.shared.send_parked(None)?;
        }
        Ok(())
    }

    /// Records that an input is done (handled, skipped or dead-lettered).
    fn done(&self, message: &BorrowedMessage<'_>) {
        if let Some(batch) = lock(&self.shared.open_batch).as_mut() {
            batch.inputs += 1;
            batch.offsets.insert(
                (message.topic().to_owned(), message.partition()),
                message.offset() + 1,
            );
        }
    }

    fn process(&self, message: &BorrowedMessage<'_>, seq: u64) -> Result<(), RuntimeError> {
        let Some(payload) = message.payload() else {
            return self.dead_letter(
                message,
                seq,
                Rejection {
                    class: "null_payload".into(),
                    message: "the record has no value".into(),
                    attempts: 1,
                },
            );
        };
        let event = match self.decode(payload)? {
            Ok(event) => event,
            Err(rejection) => return self.dead_letter(message, seq, rejection),
        };
        // The contract's rules beyond the schema: every consumer rejects the same records.
        if let Err(invalid) = event.validate() {
            return self.dead_letter(
                message,
                seq,
                Rejection {
                    class: "rejected".into(),
                    message: invalid.to_string(),
                    attempts: 1,
                },
            );
        }
        let topic = message.topic();
        if let Some(millis) = message.timestamp().to_millis() {
            lock(&self.shared.progress)
                .entry((topic.to_owned(), message.partition()))
                .or_default()
                .last_handled = Some(millis.saturating_mul(1000));
        }
        let telemetry = &self.shared.telemetry;
        telemetry.consumed(topic, event.name());
        let wall = Timestamp::now();
        // The handler's clock is the input record's timestamp, fixed for every re-delivery, so a
        // re-processed input produces byte-identical outputs (Kafka Streams' event-time rule).
        let now = message.timestamp().to_millis().map_or(wall, |millis| {
            Timestamp::from_micros(millis.saturating_mul(1000))
        });
        let latency_micros = wall
            .as_micros()
            .saturating_sub(event.envelope().occurred_at.as_micros());
        telemetry.end_to_end_latency(
            event.name(),
            Duration::from_micros(u64::try_from(latency_micros).unwrap_or(0)),
        );
        let trace = incoming_trace(message, &event);

        if H::STORE.is_none() {
            return match self.handle(&event, None, now)? {
                Ok((_, outputs)) => {
                    for output in &self.encode(&outputs, &trace)? {
                        self.shared.send_output(seq, output)?;
                    }
                    self.done(message);
                    Ok(())
                }
                Err(rejection) => self.dead_letter(message, seq, rejection),
            };
        }

        let Some(key) = message.key().and_then(|key| std::str::from_utf8(key).ok()) else {
            return self.dead_letter(
                message,
                seq,
                Rejection {
                    class: "invalid_key".into(),
                    message: "a stateful worker needs a UTF-8 record key (the state key)".into(),
                    attempts: 1,
                },
            );
        };
        let partition = message.partition();
        let event_id = event.envelope().event_id;
        let seen = match lock(&self.shared.stores).get(&partition) {
            Some(store) => store.seen(key, event_id),
            None => {
                return Err(RuntimeError::Fatal {
                    reason: format!("record of partition {partition} without its restored state"),
                });
            }
        };
        match seen {
            Seen::Duplicate => {
                self.shared.telemetry.duplicate_skipped(topic);
                tracing::debug!(event_id = %event_id, "input already applied; skipped");
                self.done(message);
                Ok(())
            }
            Seen::New(state) => match self.handle(&event, state, now)? {
                Ok((state, outputs)) => {
                    for output in &self.encode(&outputs, &trace)? {
                        self.shared.send_output(seq, output)?;
                    }
                    let applied = Applied::new(event_id, topic, message.offset(), wall);
                    let due = state
                        .as_ref()
                        .and_then(|state| (self.shared.timer_of)(state));
                    let open = state
                        .as_ref()
                        .and_then(|state| (self.shared.open_of)(state));
                    match lock(&self.shared.stores).get_mut(&partition) {
                        Some(store) => {
                            store.schedule(key, due);
                            store.track_open(key, open);
                            store.apply(key, state, applied);
                        }
                        None => {
                            return Err(RuntimeError::Fatal {
                                reason: format!(
                                    "state of partition {partition} vanished while handling"
                                ),
                            });
                        }
                    }
                    self.done(message);
                    Ok(())
                }
                Err(rejection) => self.dead_letter(message, seq, rejection),
            },
        }
    }

    /// Fires the timers due now into batch `seq`: outputs first, the changed state deferred
    /// like an input's (written once the outputs are acknowledged, or in the same transaction).
    fn fire_timers(&self, seq: u64) -> Result<(), RuntimeError> {
        if H::STORE.is_none() {
            return Ok(());
        }
        let now = Timestamp::now();
        let due: Vec<(i32, String)> = lock(&self.shared.stores)
            .iter()
            .flat_map(|(partition, store)| {
                // A partition's timers wait while its inputs are handled only up to before
                // `now`: the earliest due one among them may still get its answer.
                let reached = self.shared.handled_up_to(*partition, now);
                store
                    .due_timers(reached, TIMERS_PER_BATCH)
                    .into_iter()
                    .map(|key| (*partition, key))
            })
            .take(TIMERS_PER_BATCH)
            .collect();
        for (partition, key) in due {
            let state = lock(&self.shared.stores)
                .get(&partition)
                .and_then(|store| store.value(&key).cloned());
            let timer = state.as_ref().and_then(|state| self.handler.timer(state));
            let Some(timer) = timer else {
                // The state changed since it was indexed: it wants no timer now.
                if let Some(store) = lock(&self.shared.stores).get_mut(&partition) {
                    store.schedule(&key, None);
                }
                continue;
            };
            if timer.due > now {
                if let Some(store) = lock(&self.shared.stores).get_mut(&partition) {
                    store.schedule(&key, Some(timer.due));
                }
                continue;
            }
            let mut next = state;
            let mut context = Context::new(&timer.cause, &self.shared.config.worker, timer.due);
            let outcome = self.handler.on_timer(&key, &mut next, &mut context);
            if let Err(error) = outcome {
                tracing::warn!(key, %error, "timer failed; trying again shortly");
                self.shared.telemetry.timer_fired("error");
                if let Some(store) = lock(&self.shared.stores).get_mut(&partition) {
                    let retry_micros = i64::try_from(TIMER_RETRY.as_micros()).unwrap_or(i64::MAX);
                    store.schedule(
                        &key,
                        Some(Timestamp::from_micros(
                            now.as_micros().saturating_add(retry_micros),
                        )),
                    );
                }
                continue;
            }
            let trace = root_trace(&timer.cause);
            for output in &self.encode(&context.into_outputs(), &trace)? {
                self.shared.send_output(seq, output)?;
            }
            let due = next
                .as_ref()
                .and_then(|state| (self.shared.timer_of)(state));
            let open = next.as_ref().and_then(|state| (self.shared.open_of)(state));
            if let Some(store) = lock(&self.shared.stores).get_mut(&partition) {
                store.schedule(&key, due);
                store.track_open(&key, open);
                store.set(&key, next, now);
            }
            self.shared.telemetry.timer_fired("ok");
        }
        Ok(())
    }

    /// Decodes a payload, retrying while the registry is unavailable. `Ok(Err(..))` is a
    /// message to dead-letter; `Err(..)` stops the engine (shutdown during retries).
    fn decode(&self, payload: &[u8]) -> Result<Result<Event, Rejection>, RuntimeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.runtime.block_on(self.codec.decode(payload)) {
                Ok(event) => {
                    self.shared.health.set_registry_reachable(true);
                    return Ok(Ok(event));
                }
                Err(error) => error,
            };
            if !error.is_retriable() {
                return Ok(Err(rejection_of(&error, attempt)));
            }
            self.shared.health.set_registry_reachable(false);
            match self
                .shared
                .config
                .backoff
                .delay(attempt, &mut *self.rng.borrow_mut())
            {
                Some(delay) => {
                    self.shared.telemetry.retried(error.class());
                    tracing::warn!(%error, attempt, delay_ms = delay.as_millis() as u64, "retrying decode");
                    self.sleep(delay)?;
                }
                None => return Ok(Err(rejection_of(&error, attempt))),
            }
        }
    }

    /// Runs the handler, retrying retriable failures. Each attempt starts from the same state.
    #[expect(
        clippy::type_complexity,
        reason = "a one-off pairing of the handler's results"
    )]
    fn handle(
        &self,
        event: &Event,
        state: Option<H::State>,
        now: Timestamp,
    ) -> Result<Result<(Option<H::State>, Vec<Event>), Rejection>, RuntimeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut attempt_state = state.clone();
            let mut context = Context::new(event.envelope(), &self.shared.config.worker, now);
            let started = Instant::now();
            let result = self.handler.handle(event, &mut attempt_state, &mut context);
            self.shared
                .telemetry
                .handler_duration(event.name(), started.elapsed());
            let reason = match result {
                Ok(()) => return Ok(Ok((attempt_state, context.into_outputs()))),
                Err(HandlerError::Rejected { reason }) => {
                    return Ok(Err(Rejection {
                        class: "rejected".into(),
                        message: reason,
                        attempts: attempt,
                    }));
                }
                Err(HandlerError::Retriable { reason }) => reason,
            };
            match self
                .shared
                .config
                .backoff
                .delay(attempt, &mut *self.rng.borrow_mut())
            {
                Some(delay) => {
                    self.shared.telemetry.retried("handler_retriable");
                    tracing::warn!(reason = %reason, attempt, delay_ms = delay.as_millis() as u64, "retrying handler");
                    self.sleep(delay)?;
                }
                None => {
                    return Ok(Err(Rejection {
                        class: "retries_exhausted".into(),
                        message: reason,
                        attempts: attempt,
                    }));
                }
            }
        }
    }

    /// Sleeps between retries; a shutdown request ends the wait and abandons the input, whose
    /// offset is then not stored (the next owner handles it).
    fn sleep(&self, delay: Duration) -> Result<(), RuntimeError> {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if self.shutdown.is_cancelled() {
                return Err(RuntimeError::Interrupted);
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        Ok(())
    }

    fn encode(&self, events: &[Event], trace: &TraceParent) -> Result<Vec<Output>, RuntimeError> {
        let mut outputs = Vec::with_capacity(events.len());
        for event in events {
            let payload = self
                .codec
                .encode_to_vec(event)
                .map_err(RuntimeError::Encode)?;
            let id = event.envelope().event_id.as_uuid();
            let mut span_seed = [0_u8; 8];
            span_seed.copy_from_slice(&id.as_bytes()[..8]);
            outputs.push(Output {
                topic: self.shared.config.names.of(event.topic()),
                key: event.key().to_owned(),
                payload,
                headers: vec![
                    (
                        TraceParent::HEADER.to_owned(),
                        trace.child(span_seed).to_header().into_bytes(),
                    ),
                    (
                        EVENT_TYPE_HEADER.to_owned(),
                        event.name().as_bytes().to_vec(),
                    ),
                ],
            });
        }
        Ok(outputs)
    }

    fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        seq: u64,
        rejection: Rejection,
    ) -> Result<(), RuntimeError> {
        let topic = message.topic();
        tracing::warn!(
            topic,
            partition = message.partition(),
            offset = message.offset(),
            error_class = %rejection.class,
            error = %rejection.message,
            "dead-lettering record"
        );
        let dead_letter = DeadLetter {
            error_class: rejection.class,
            message: rejection.message,
            topic: topic.to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            worker: self.shared.config.worker.clone(),
            attempts: rejection.attempts,
        };
        let added = dead_letter.headers();
        let original = message.headers().into_iter().flat_map(|headers| {
            headers
                .iter()
                .map(|header| (header.key, header.value))
                .collect::<Vec<_>>()
        });
        let headers = owned_headers(
            original.chain(
                added
                    .iter()
                    .map(|(name, value)| (name.as_str(), Some(value.as_slice()))),
            ),
        );
        let destination = self.shared.config.names.dead_letter();
        let mut record = BaseRecord::with_opaque_to(&destination, seq as usize).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.shared.send(seq, record)?;
        self.shared
            .telemetry
            .dead_lettered(topic, &dead_letter.error_class);
        self.done(message);
        Ok(())
    }

    /// Reports how many keys of the assigned partitions have open work and the age of the
    /// oldest (zero when none).
    fn report_open_work(&mut self) {
        self.last_open_report = Instant::now();
        if H::STORE.is_none() {
            return;
        }
        let (count, oldest) = lock(&self.shared.stores).values().fold(
            (0, None::<Timestamp>),
            |(count, oldest), store| {
                let (open, earliest) = store.open_work();
                let oldest = match (oldest, earliest) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (count + open, oldest)
            },
        );
        let age = oldest.map_or(Duration::ZERO, |since| {
            let micros = Timestamp::now()
                .as_micros()
                .saturating_sub(since.as_micros());
            Duration::from_micros(u64::try_from(micros).unwrap_or(0))
        });
        self.shared.telemetry.open_work(count, age);
    }

    /// Prunes rings, tombstones expired keys, and reports store sizes.
    fn expire(&mut self) -> Result<(), RuntimeError> {
        self.last_expire = Instant::now();
        let Some(store_name) = self.shared.store_name().map(str::to_owned) else {
            return Ok(());
        };
        let now = Timestamp::now();
        let mut tombstones = Vec::new();
        for (partition, store) in lock(&self.shared.stores).iter_mut() {
            tombstones.extend(
                store
                    .expire(now)
                    .into_iter()
                    .map(|record| (*partition, record)),
            );
            self.shared
                .telemetry
                .state_entries(&store_name, *partition, store.len());
        }
        if tombstones.is_empty() {
            return Ok(());
        }
        let seq = self.shared.inflight.open();
        for (partition, record) in &tombstones {
            self.shared.send_changelog(seq, *partition, record)?;
        }
        self.shared.inflight.seal(seq, 0, Offsets::new());
        // Exactly-once: a transaction of tombstones alone (no inputs, so nothing to rewind if
        // it aborts: the keys are expired again at the next interval).
        self.shared
            .finish_transaction(self.consumer.group_metadata())?;
        tracing::debug!(tombstones = tombstones.len(), "expired state keys");
        Ok(())
    }

    /// Finishes in-flight work within the drain deadline, commits, and leaves the group.
    fn drain(self, clean: bool) -> Result<(), RuntimeError> {
        let shared = &self.shared;
        shared.health.set_draining();
        if shared.txn.is_some() {
            return self.drain_transactional(clean);
        }
        let mut result = shared.flush_deferred();
        shared.seal_open_batch();
        let started = Instant::now();
        let deadline = started + shared.config.drain_deadline;
        let in_flight_before = shared.inflight.inputs_in_flight();
        match shared.inflight.wait_all(deadline) {
            Ok(reached) => {
                if let Err(error) = store_offsets(&self.consumer, &reached) {
                    result = result.and(Err(error));
                }
            }
            Err(failed) => result = result.and(Err(RuntimeError::Delivery(failed))),
        }
        let unacknowledged = shared.inflight.inputs_in_flight();
        let commit_started = Instant::now();
        let committed = match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => "ok",
            Err(error) => {
                tracing::warn!(%error, "final commit failed; the next owner re-processes (deduplicated)");
                "error"
            }
        };
        shared.telemetry.commit(committed, commit_started.elapsed());
        tracing::info!(
            clean,
            drained_inputs = in_flight_before.saturating_sub(unacknowledged),
            unacknowledged_inputs = unacknowledged,
            commit = committed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "drained"
        );
        self.leave(started, deadline);
        result
    }

    /// Exactly-once: commits the open transaction (or, after a fatal error, leaves it for the
    /// next instance's `init_transactions` to abort), then leaves the group.
    fn drain_transactional(self, clean: bool) -> Result<(), RuntimeError> {
        let started = Instant::now();
        let deadline = started + self.shared.config.drain_deadline;
        let result = if clean {
            self.shared
                .finish_transaction(self.consumer.group_metadata())
                .map(|finished| {
                    if let Finished::Aborted { reason } = finished {
                        tracing::warn!(reason = %reason, "last transaction aborted at shutdown; the next owner handles its inputs");
                    }
                })
        } else if let Some(txn) = &self.shared.txn {
            // Abort rather than leave it open: until it ends, `read_committed` consumers of
            // the outputs cannot read past it. A machine that already failed makes no call.
            if let Err(error) = lock(txn).abort("stopping after an error") {
                tracing::debug!(%error, "no abort at shutdown");
            }
            Ok(())
        } else {
            Ok(())
        };
        tracing::info!(
            clean,
            committed = clean && result.is_ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "drained"
        );
        self.leave(started, deadline);
        result
    }

    /// Leaves the group now rather than after the session timeout, and flushes the producer.
    fn leave(self, started: Instant, deadline: Instant) {
        self.consumer.unsubscribe();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if let Err(error) = self
            .shared
            .producer
            .flush(remaining.max(Duration::from_millis(100)))
        {
            tracing::warn!(%error, "producer flush at shutdown incomplete");
        }
        drop(self.consumer);
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "left the group"
        );
    }
}

fn rejection_of(error: &DecodeError, attempts: u32) -> Rejection {
    Rejection {
        class: error.class().to_owned(),
        message: error.to_string(),
        attempts,
    }
}

fn incoming_trace(message: &BorrowedMessage<'_>, event: &Event) -> TraceParent {
    let carried = message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|header| header.key == TraceParent::HEADER)
            .and_then(|header| header.value)
            .and_then(TraceParent::parse)
    });
    carried.unwrap_or_else(|| root_trace(event.envelope()))
}

/// A trace rooted at an event without a carried trace context: its id is the event's.
fn root_trace(envelope: &retail_events::Envelope) -> TraceParent {
    let bytes = *envelope.event_id.as_uuid().as_bytes();
    let mut span = [0_u8; 8];
    span.copy_from_slice(&bytes[8..]);
    TraceParent::root(bytes, span)
}

fn owned_headers<'a>(headers: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>) -> OwnedHeaders {
    headers.fold(OwnedHeaders::new(), |owned, (key, value)| {
        owned.insert(Header { key, value })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(
        entries: &[(&str, i32, Option<i64>, Option<i64>)],
    ) -> HashMap<(String, i32), Progress> {
        entries
            .iter()
            .map(|(topic, partition, last_handled, lag)| {
                (
                    ((*topic).to_owned(), *partition),
                    Progress {
                        last_handled: *last_handled,
                        lag: *lag,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn timers_wait_for_inputs_that_are_behind_and_not_for_idle_ones() {
        let inputs = vec!["orders".to_owned(), "payments".to_owned()];
        let now = Timestamp::from_micros(1_000);
        // Both caught up: timers due by now fire.
        let caught_up = progress(&[
            ("orders", 0, Some(900), Some(0)),
            ("payments", 0, None, Some(0)),
        ]);
        assert_eq!(handled_up_to(&inputs, &caught_up, 0, now), now);
        // Payments behind, handled up to 400: nothing due after 400 fires yet.
        let behind = progress(&[
            ("orders", 0, Some(900), Some(0)),
            ("payments", 0, Some(400), Some(12)),
        ]);
        assert_eq!(
            handled_up_to(&inputs, &behind, 0, now),
            Timestamp::from_micros(400)
        );
        // Nothing known about a partition yet (just assigned, no statistics): hold everything.
        let unknown = progress(&[("orders", 0, Some(900), None)]);
        assert_eq!(
            handled_up_to(&inputs, &unknown, 0, now),
            Timestamp::from_micros(0)
        );
        // Another partition's progress does not matter.
        assert_eq!(
            handled_up_to(&inputs, &behind, 1, now),
            Timestamp::from_micros(0)
        );
        let other = progress(&[("orders", 1, None, Some(0)), ("payments", 1, None, Some(0))]);
        assert_eq!(handled_up_to(&inputs, &other, 1, now), now);
    }
}
