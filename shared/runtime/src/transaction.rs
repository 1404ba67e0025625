//! The exactly-once mode's transaction state machine: one Kafka transaction per batch holds the
//! batch's outputs, its changelog records and its input offsets, so they become visible to
//! `read_committed` consumers together or not at all.
//!
//! The engine's processing thread drives it: [`Transactions::init`] once at startup,
//! [`Transactions::ensure_open`] before a batch's first record, [`Transactions::finish`] at the
//! end of the batch (send the input offsets, commit), [`Transactions::abort`] to discard a
//! batch. librdkafka's transactional calls block up to their timeout, which is why they run on
//! the processing thread and never on the async runtime.
//!
//! Errors are classified the way librdkafka classifies them ([`TxnError`]): a retriable error
//! repeats the same call, an abortable one aborts the transaction and hands the batch back to
//! the engine, which rewinds to the committed offsets ([`Finished::Aborted`]); a fatal one (a
//! newer instance with the same `transactional.id` fenced this producer) leaves the machine
//! [`TxnState::Failed`] for good, and the worker must close its clients and exit non-zero so the
//! orchestrator restarts it.
//!
//! The invariant kept here: input offsets are only ever sent inside an open transaction, after
//! its begin and before its commit or abort. Nothing else in exactly-once mode stores or commits
//! offsets, so an offset never moves unless the outputs it caused commit with it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{Partitioner, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::inflight::Offsets;

/// The transactional calls of a producer: implemented for rdkafka's [`ThreadedProducer`], faked
/// in tests so the state machine is checked without a broker.
pub trait TransactionalProducer {
    /// The consumer's group metadata ([`ConsumerGroupMetadata`] in production): it ties the
    /// offsets to the group generation, so a zombie of an older generation is fenced (KIP-447).
    type Group;

    /// Fences earlier instances with the same `transactional.id` and aborts what they left open.
    fn init_transactions(&self, timeout: Duration) -> Result<(), TxnError>;

    /// Opens a transaction; every record produced from now on belongs to it.
    fn begin_transaction(&self) -> Result<(), TxnError>;

    /// Adds the input offsets (next offsets to consume) to the open transaction.
    fn send_offsets_to_transaction(
        &self,
        offsets: &Offsets,
        group: &Self::Group,
        timeout: Duration,
    ) -> Result<(), TxnError>;

    /// Flushes the transaction's records and commits it with its offsets.
    fn commit_transaction(&self, timeout: Duration) -> Result<(), TxnError>;

    /// Purges the transaction's records and aborts it.
    fn abort_transaction(&self, timeout: Duration) -> Result<(), TxnError>;
}

/// A transactional call's failure, classified the way librdkafka's `RDKafkaError` says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// Retry the same call (e.g. a timeout): `is_retriable()`.
    #[error("retriable: {0}")]
    Retriable(String),
    /// The transaction must be aborted: `txn_requires_abort()`.
    #[error("transaction must be aborted: {0}")]
    Abortable(String),
    /// The producer is unusable (fenced, or a fatal error): `is_fatal()`.
    #[error("fatal: {0}")]
    Fatal(String),
}

impl TxnError {
    /// Classifies an rdkafka error from a transactional call.
    ///
    /// A `KafkaError::Transaction` carries librdkafka's flags. Fatal is checked first: no abort
    /// can save a fenced producer, whatever other flag the error carries. An error with none of
    /// the flags (librdkafka's `_STATE`, `_NOT_CONFIGURED`: the call was not allowed now) is
    /// treated as abortable, like every other `KafkaError` variant: those reach a transactional
    /// call when rdkafka fails around librdkafka (`ThreadedProducer::commit_transaction` flushes
    /// first and reports a flush timeout as `KafkaError::Flush`; building the offset list fails
    /// with `KafkaError::SetPartitionOffset`). Aborting is always safe, because the batch is
    /// re-processed from the committed offsets; and if the producer is in fact broken, the abort
    /// fails too, which [`Transactions`] treats as fatal.
    pub fn from_kafka(error: &KafkaError) -> Self {
        let message = error.to_string();
        match error {
            KafkaError::Transaction(rd_error) if rd_error.is_fatal() => Self::Fatal(message),
            KafkaError::Transaction(rd_error) if rd_error.txn_requires_abort() => {
                Self::Abortable(message)
            }
            KafkaError::Transaction(rd_error) if rd_error.is_retriable() => {
                Self::Retriable(message)
            }
            _ => Self::Abortable(message),
        }
    }
}

impl<C, Part> TransactionalProducer for ThreadedProducer<C, Part>
where
    C: ProducerContext<Part> + 'static,
    Part: Partitioner,
{
    type Group = ConsumerGroupMetadata;

    fn init_transactions(&self, timeout: Duration) -> Result<(), TxnError> {
        Producer::init_transactions(self, timeout).map_err(|error| TxnError::from_kafka(&error))
    }

    fn begin_transaction(&self) -> Result<(), TxnError> {
        Producer::begin_transaction(self).map_err(|error| TxnError::from_kafka(&error))
    }

    fn send_offsets_to_transaction(
        &self,
        offsets: &Offsets,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), TxnError> {
        let list = offset_list(offsets).map_err(|error| TxnError::from_kafka(&error))?;
        Producer::send_offsets_to_transaction(self, &list, group, timeout)
            .map_err(|error| TxnError::from_kafka(&error))
    }

    fn commit_transaction(&self, timeout: Duration) -> Result<(), TxnError> {
        Producer::commit_transaction(self, timeout).map_err(|error| TxnError::from_kafka(&error))
    }

    fn abort_transaction(&self, timeout: Duration) -> Result<(), TxnError> {
        Producer::abort_transaction(self, timeout).map_err(|error| TxnError::from_kafka(&error))
    }
}

/// A shared producer: the engine keeps one handle to produce through and the state machine
/// another.
impl<P: TransactionalProducer> TransactionalProducer for Arc<P> {
    type Group = P::Group;

    fn init_transactions(&self, timeout: Duration) -> Result<(), TxnError> {
        P::init_transactions(self, timeout)
    }

    fn begin_transaction(&self) -> Result<(), TxnError> {
        P::begin_transaction(self)
    }

    fn send_offsets_to_transaction(
        &self,
        offsets: &Offsets,
        group: &Self::Group,
        timeout: Duration,
    ) -> Result<(), TxnError> {
        P::send_offsets_to_transaction(self, offsets, group, timeout)
    }

    fn commit_transaction(&self, timeout: Duration) -> Result<(), TxnError> {
        P::commit_transaction(self, timeout)
    }

    fn abort_transaction(&self, timeout: Duration) -> Result<(), TxnError> {
        P::abort_transaction(self, timeout)
    }
}

/// The offsets as librdkafka wants them. [`Offsets`] already holds the next offset to consume
/// (last processed + 1), which is what a commit means: no `+ 1` here.
fn offset_list(offsets: &Offsets) -> KafkaResult<TopicPartitionList> {
    let mut list = TopicPartitionList::with_capacity(offsets.len());
    for ((topic, partition), next) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    Ok(list)
}

/// Where the transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// `init_transactions` has not succeeded yet: nothing may be produced.
    Uninitialised,
    /// No transaction is open; the next batch begins one.
    Ready,
    /// A transaction is open: records produced now belong to it.
    Open,
    /// A fatal error happened: the producer is unusable and the worker must exit.
    Failed,
}

/// The outcome of finishing a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The batch's records and offsets are committed.
    Committed,
    /// The batch's records and offsets were discarded: the caller must rewind its partitions to
    /// the committed offsets and re-restore their state before handling another record.
    Aborted {
        /// The failure that forced the abort.
        reason: String,
    },
}

/// Fatal: close the clients and exit non-zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transactions failed fatally: {reason}")]
pub struct TxnFatal {
    /// What failed; for a call made after the failure, the original failure.
    pub reason: String,
}

/// The exactly-once state machine around a transactional producer.
pub struct Transactions<P: TransactionalProducer> {
    /// The producer; the engine produces records through [`Transactions::producer`], and every
    /// transactional call goes through this machine so the state below never lies.
    producer: P,
    /// Where the transaction is, so a call out of turn fails here instead of in librdkafka.
    state: TxnState,
    /// How long each blocking call may take; a timeout comes back as a retriable error.
    timeout: Duration,
    /// Further attempts of a call that failed retriably, beyond the first.
    max_retries: u32,
    /// The first fatal failure, repeated by every later call so the exit log names the cause.
    failure: Option<String>,
}

impl<P: TransactionalProducer> fmt::Debug for Transactions<P> {
    // Written by hand so the producer (rdkafka's is not `Debug`) need not be.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Transactions")
            .field("state", &self.state)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl<P: TransactionalProducer> Transactions<P> {
    /// A machine that has not initialised transactions yet. `timeout` bounds each blocking
    /// call; a call that fails retriably is attempted up to `max_retries` more times.
    pub fn new(producer: P, timeout: Duration, max_retries: u32) -> Self {
        Self {
            producer,
            state: TxnState::Uninitialised,
            timeout,
            max_retries,
            failure: None,
        }
    }

    /// The producer, to produce a batch's records through (after [`Transactions::ensure_open`]).
    pub fn producer(&self) -> &P {
        &self.producer
    }

    /// Where the transaction is.
    pub fn state(&self) -> TxnState {
        self.state
    }

    /// Initialises transactions (Uninitialised → Ready), fencing any earlier instance with the
    /// same `transactional.id`. Retriable failures are retried; anything else, or retries
    /// running out, is fatal: without a producer id the worker cannot do anything. A second
    /// call is a no-op.
    pub fn init(&mut self) -> Result<(), TxnFatal> {
        match self.state {
            TxnState::Uninitialised => {}
            TxnState::Ready | TxnState::Open => return Ok(()),
            TxnState::Failed => return Err(self.failed_earlier()),
        }
        let timeout = self.timeout;
        match self.attempt("init_transactions", |producer| {
            producer.init_transactions(timeout)
        }) {
            Ok(()) => {
                self.state = TxnState::Ready;
                tracing::debug!("transactions initialised");
                Ok(())
            }
            Err(error) => Err(self.fail(self.step_failure("init_transactions", &error))),
        }
    }

    /// Begins a transaction unless one is open (Ready → Open); call it before producing a
    /// batch's first record. A failure to begin is fatal: librdkafka refuses only when the
    /// producer is in the wrong state or unusable, and no transaction exists to abort.
    pub fn ensure_open(&mut self) -> Result<(), TxnFatal> {
        match self.state {
            TxnState::Open => return Ok(()),
            TxnState::Ready => {}
            TxnState::Uninitialised => {
                return Err(self.fail("begin_transaction: not initialised".to_owned()));
            }
            TxnState::Failed => return Err(self.failed_earlier()),
        }
        match self.attempt("begin_transaction", |producer| producer.begin_transaction()) {
            Ok(()) => {
                self.state = TxnState::Open;
                tracing::debug!("transaction begun");
                Ok(())
            }
            Err(error) => Err(self.fail(self.step_failure("begin_transaction", &error))),
        }
    }

    /// Finishes the open transaction: sends `offsets` (the batch's next offsets to consume)
    /// with the consumer's `group` metadata, then commits; both calls are retried on retriable
    /// failures. Empty offsets skip the send but still commit.
    ///
    /// Without an open transaction (Ready) nothing is called and the result is `Committed`:
    /// there is nothing to commit, and offsets must never be committed outside a transaction.
    /// This is also why finishing after [`Transactions::abort`] is harmless: the aborted
    /// batch's offsets are dropped, not committed without their outputs.
    ///
    /// An abortable failure, or a retriable one that outlasts the retries, aborts the
    /// transaction (Open → Ready) and returns `Aborted`: rewind and re-restore. A fatal failure,
    /// including any failure of that abort, leaves the machine Failed.
    pub fn finish(&mut self, offsets: &Offsets, group: &P::Group) -> Result<Finished, TxnFatal> {
        match self.state {
            TxnState::Open => {}
            TxnState::Ready => {
                if !offsets.is_empty() {
                    tracing::debug!(
                        partitions = offsets.len(),
                        "no transaction open; offsets not committed"
                    );
                }
                return Ok(Finished::Committed);
            }
            TxnState::Uninitialised => {
                return Err(self.fail("finish: not initialised".to_owned()));
            }
            TxnState::Failed => return Err(self.failed_earlier()),
        }
        let timeout = self.timeout;
        if !offsets.is_empty() {
            let sent = self.attempt("send_offsets_to_transaction", |producer| {
                producer.send_offsets_to_transaction(offsets, group, timeout)
            });
            if let Err(error) = sent {
                return self.recover("send_offsets_to_transaction", &error);
            }
        }
        match self.attempt("commit_transaction", |producer| {
            producer.commit_transaction(timeout)
        }) {
            Ok(()) => {
                self.state = TxnState::Ready;
                tracing::debug!(partitions = offsets.len(), "transaction committed");
                Ok(Finished::Committed)
            }
            Err(error) => self.recover("commit_transaction", &error),
        }
    }

    /// Aborts the open transaction, if any (Open → Ready), discarding its records: a record
    /// could not be enqueued, or shutdown must drop unfinished work. Without an open
    /// transaction nothing is called. A failed abort is fatal (see [`Transactions::finish`]).
    pub fn abort(&mut self, reason: &str) -> Result<(), TxnFatal> {
        match self.state {
            TxnState::Open => self.abort_open(reason),
            TxnState::Ready | TxnState::Uninitialised => Ok(()),
            TxnState::Failed => Err(self.failed_earlier()),
        }
    }

    /// After `step` of `finish` failed: abort, unless the failure is fatal.
    fn recover(&mut self, step: &str, error: &TxnError) -> Result<Finished, TxnFatal> {
        let reason = self.step_failure(step, error);
        match error {
            TxnError::Fatal(_) => Err(self.fail(reason)),
            // A retriable failure that outlasted its retries cannot be waited out for ever: the
            // transaction would time out on the broker anyway, so give the batch up now.
            TxnError::Abortable(_) | TxnError::Retriable(_) => {
                self.abort_open(&reason)?;
                Ok(Finished::Aborted { reason })
            }
        }
    }

    /// Aborts the open transaction. Any failure is fatal, even an abortable or retriable one:
    /// librdkafka documents that a producer whose abort fails is unusable, and the outcome of
    /// the transaction is then unknown (after a timed-out commit, which may still complete in
    /// the background, librdkafka refuses the abort as a conflicting call), so rewinding could
    /// read offsets that are about to change. Exiting lets the next instance's
    /// `init_transactions` fence this one and settle the transaction.
    fn abort_open(&mut self, reason: &str) -> Result<(), TxnFatal> {
        debug_assert_eq!(
            self.state,
            TxnState::Open,
            "only an open transaction is aborted"
        );
        let timeout = self.timeout;
        match self.attempt("abort_transaction", |producer| {
            producer.abort_transaction(timeout)
        }) {
            Ok(()) => {
                self.state = TxnState::Ready;
                tracing::warn!(reason, "transaction aborted");
                Ok(())
            }
            Err(error) => {
                let failure = self.step_failure("abort_transaction", &error);
                Err(self.fail(format!("{failure}, aborting after {reason}")))
            }
        }
    }

    /// Runs `call`, repeating it while it fails retriably, at most `max_retries` more times,
    /// and returns its last result: a `Retriable` error means the retries ran out.
    ///
    /// There is no pause between attempts: librdkafka's retriable errors from these calls are
    /// timeouts after blocking for the whole timeout (it retries coordinator errors itself
    /// meanwhile), and calling again resumes the same operation, so the call is its own back-off.
    fn attempt(
        &self,
        call: &'static str,
        run: impl Fn(&P) -> Result<(), TxnError>,
    ) -> Result<(), TxnError> {
        let mut retries = 0;
        loop {
            match run(&self.producer) {
                Err(TxnError::Retriable(reason)) if retries < self.max_retries => {
                    retries += 1;
                    tracing::warn!(
                        call,
                        retry = retries,
                        max_retries = self.max_retries,
                        reason = %reason,
                        "retrying transactional call"
                    );
                }
                result => return result,
            }
        }
    }

    /// Names the failed call, and says so when retries ran out.
    fn step_failure(&self, call: &str, error: &TxnError) -> String {
        match error {
            TxnError::Retriable(_) => {
                format!(
                    "{call}: {error} (retries exhausted, max_retries = {})",
                    self.max_retries
                )
            }
            TxnError::Abortable(_) | TxnError::Fatal(_) => format!("{call}: {error}"),
        }
    }

    /// Enters Failed for good and returns the fatal error.
    fn fail(&mut self, reason: String) -> TxnFatal {
        tracing::error!(
            reason = %reason,
            previous_state = ?self.state,
            "transactions failed fatally; the worker must exit"
        );
        self.state = TxnState::Failed;
        self.failure = Some(reason.clone());
        TxnFatal { reason }
    }

    /// The error of any call made once Failed: no producer call, the original cause.
    fn failed_earlier(&self) -> TxnFatal {
        TxnFatal {
            reason: format!(
                "failed earlier: {}",
                self.failure.as_deref().unwrap_or("unknown failure")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{HashMap, VecDeque};

    use proptest::prelude::*;

    use super::*;
    use Kind::{Abort, Begin, Commit, Init, SendOffsets};

    /// Which producer method was called, to script its results.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Kind {
        Init,
        Begin,
        SendOffsets,
        Commit,
        Abort,
    }

    /// One call the fake received, with what it returned.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Call {
        kind: Kind,
        /// The offsets and group of a `SendOffsets`.
        sent: Option<(Offsets, String)>,
        result: Result<(), TxnError>,
    }

    /// Records every call in order and returns scripted results, `Ok` once a script runs out.
    #[derive(Debug, Default)]
    struct FakeProducer {
        calls: RefCell<Vec<Call>>,
        scripts: RefCell<HashMap<Kind, VecDeque<Result<(), TxnError>>>>,
    }

    impl FakeProducer {
        fn scripted(script: &[(Kind, Result<(), TxnError>)]) -> Self {
            let fake = Self::default();
            for (kind, result) in script {
                fake.scripts
                    .borrow_mut()
                    .entry(*kind)
                    .or_default()
                    .push_back(result.clone());
            }
            fake
        }

        fn call(&self, kind: Kind, sent: Option<(Offsets, String)>) -> Result<(), TxnError> {
            let result = self
                .scripts
                .borrow_mut()
                .get_mut(&kind)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Ok(()));
            self.calls.borrow_mut().push(Call {
                kind,
                sent,
                result: result.clone(),
            });
            result
        }

        fn kinds(&self) -> Vec<Kind> {
            self.calls.borrow().iter().map(|call| call.kind).collect()
        }

        fn count(&self) -> usize {
            self.calls.borrow().len()
        }
    }

    impl TransactionalProducer for FakeProducer {
        type Group = String;

        fn init_transactions(&self, _timeout: Duration) -> Result<(), TxnError> {
            self.call(Kind::Init, None)
        }

        fn begin_transaction(&self) -> Result<(), TxnError> {
            self.call(Kind::Begin, None)
        }

        fn send_offsets_to_transaction(
            &self,
            offsets: &Offsets,
            group: &String,
            _timeout: Duration,
        ) -> Result<(), TxnError> {
            self.call(Kind::SendOffsets, Some((offsets.clone(), group.clone())))
        }

        fn commit_transaction(&self, _timeout: Duration) -> Result<(), TxnError> {
            self.call(Kind::Commit, None)
        }

        fn abort_transaction(&self, _timeout: Duration) -> Result<(), TxnError> {
            self.call(Kind::Abort, None)
        }
    }

    fn retriable() -> Result<(), TxnError> {
        Err(TxnError::Retriable("coordinator request timed out".into()))
    }

    fn abortable() -> Result<(), TxnError> {
        Err(TxnError::Abortable("a produced record failed".into()))
    }

    fn fenced() -> Result<(), TxnError> {
        Err(TxnError::Fatal(
            "producer fenced by a newer instance".into(),
        ))
    }

    fn offsets() -> Offsets {
        Offsets::from([
            (("orders".to_owned(), 0), 42),
            (("orders".to_owned(), 3), 7),
        ])
    }

    fn group() -> String {
        "inventory".to_owned()
    }

    fn machine(
        script: &[(Kind, Result<(), TxnError>)],
        max_retries: u32,
    ) -> Transactions<FakeProducer> {
        Transactions::new(
            FakeProducer::scripted(script),
            Duration::from_secs(10),
            max_retries,
        )
    }

    /// A machine with a transaction open (init and begin succeed unless scripted otherwise).
    fn opened(
        script: &[(Kind, Result<(), TxnError>)],
        max_retries: u32,
    ) -> Transactions<FakeProducer> {
        let mut transactions = machine(script, max_retries);
        assert_eq!(transactions.init(), Ok(()));
        assert_eq!(transactions.ensure_open(), Ok(()));
        assert_eq!(transactions.state(), TxnState::Open);
        transactions
    }

    /// Invariant 1, on the whole call log: offsets are sent only inside a begun transaction,
    /// commit and abort only end an open one, and no transaction begins while one is open.
    fn assert_offsets_only_inside_transactions(producer: &FakeProducer) {
        let mut open = false;
        for (index, call) in producer.calls.borrow().iter().enumerate() {
            match call.kind {
                Init => assert!(!open, "init inside a transaction at call {index}"),
                Begin => {
                    assert!(!open, "begin inside a transaction at call {index}");
                    open = call.result.is_ok();
                }
                SendOffsets => assert!(open, "offsets sent outside a transaction at call {index}"),
                Commit | Abort => {
                    assert!(
                        open,
                        "{:?} outside a transaction at call {index}",
                        call.kind
                    );
                    if call.result.is_ok() {
                        open = false;
                    }
                }
            }
        }
    }

    /// Invariant 3: once Failed, every call fails without touching the producer.
    fn assert_failed_for_good(transactions: &mut Transactions<FakeProducer>) {
        assert_eq!(transactions.state(), TxnState::Failed);
        let calls = transactions.producer().count();
        for result in [
            transactions.ensure_open(),
            transactions.finish(&offsets(), &group()).map(drop),
            transactions.finish(&Offsets::new(), &group()).map(drop),
            transactions.abort("shutdown"),
            transactions.init(),
        ] {
            let fatal = result.expect_err("a failed machine stays failed");
            assert!(fatal.reason.starts_with("failed earlier: "), "{fatal}");
        }
        assert_eq!(
            transactions.producer().count(),
            calls,
            "no call after failing"
        );
        assert_eq!(transactions.state(), TxnState::Failed);
        assert_offsets_only_inside_transactions(transactions.producer());
    }

    #[test]
    fn a_batch_sends_its_offsets_and_commits_inside_its_transaction() {
        let mut transactions = opened(&[], 2);
        // A second call inside the same batch begins nothing.
        assert_eq!(transactions.ensure_open(), Ok(()));
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(transactions.state(), TxnState::Ready);
        let producer = transactions.producer();
        assert_eq!(producer.kinds(), [Init, Begin, SendOffsets, Commit]);
        assert_eq!(
            producer.calls.borrow()[2].sent,
            Some((offsets(), group())),
            "the batch's offsets and the group, unchanged"
        );
        assert_offsets_only_inside_transactions(producer);
    }

    #[test]
    fn consecutive_batches_each_get_their_own_transaction() {
        let mut transactions = opened(&[], 0);
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(transactions.ensure_open(), Ok(()));
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(
            transactions.producer().kinds(),
            [Init, Begin, SendOffsets, Commit, Begin, SendOffsets, Commit]
        );
        assert_offsets_only_inside_transactions(transactions.producer());
    }

    #[test]
    fn finish_without_an_open_transaction_calls_nothing() {
        let mut transactions = machine(&[], 2);
        assert_eq!(transactions.init(), Ok(()));
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(
            transactions.finish(&Offsets::new(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(transactions.producer().kinds(), [Init]);
        assert_eq!(transactions.state(), TxnState::Ready);
    }

    #[test]
    fn finish_with_empty_offsets_commits_without_sending_offsets() {
        let mut transactions = opened(&[], 2);
        assert_eq!(
            transactions.finish(&Offsets::new(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(transactions.producer().kinds(), [Init, Begin, Commit]);
        assert_eq!(transactions.state(), TxnState::Ready);
    }

    #[test]
    fn an_abortable_send_offsets_aborts_once_and_the_next_batch_begins_anew() {
        let mut transactions = opened(&[(SendOffsets, abortable())], 2);
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Ok(Finished::Aborted {
                reason: "send_offsets_to_transaction: transaction must be aborted: a produced record failed"
                    .into()
            })
        );
        assert_eq!(transactions.state(), TxnState::Ready);
        assert_eq!(transactions.ensure_open(), Ok(()));
        assert_eq!(
            transactions.producer().kinds(),
            [Init, Begin, SendOffsets, Abort, Begin]
        );
        assert_offsets_only_inside_transactions(transactions.producer());
    }

    #[test]
    fn an_abortable_commit_aborts_once_and_the_next_batch_begins_anew() {
        let mut transactions = opened(&[(Commit, abortable())], 2);
        let finished = transactions.finish(&offsets(), &group());
        assert!(
            matches!(&finished, Ok(Finished::Aborted { reason }) if reason.starts_with("commit_transaction: ")),
            "{finished:?}"
        );
        assert_eq!(transactions.ensure_open(), Ok(()));
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(
            transactions.producer().kinds(),
            [
                Init,
                Begin,
                SendOffsets,
                Commit,
                Abort,
                Begin,
                SendOffsets,
                Commit
            ]
        );
        assert_offsets_only_inside_transactions(transactions.producer());
    }

    #[test]
    fn fenced_in_send_offsets_is_fatal_for_good() {
        let mut transactions = opened(&[(SendOffsets, fenced())], 2);
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Err(TxnFatal {
                reason: "send_offsets_to_transaction: fatal: producer fenced by a newer instance"
                    .into()
            })
        );
        // No abort: a fenced producer cannot abort.
        assert_eq!(transactions.producer().kinds(), [Init, Begin, SendOffsets]);
        assert_failed_for_good(&mut transactions);
    }

    #[test]
    fn fenced_in_commit_is_fatal_for_good() {
        let mut transactions = opened(&[(Commit, fenced())], 2);
        let fatal = transactions
            .finish(&offsets(), &group())
            .expect_err("fenced");
        assert!(
            fatal.reason.starts_with("commit_transaction: fatal: "),
            "{fatal}"
        );
        assert_eq!(
            transactions.producer().kinds(),
            [Init, Begin, SendOffsets, Commit]
        );
        assert_failed_for_good(&mut transactions);
    }

    #[test]
    fn fenced_in_the_abort_after_an_abortable_commit_is_fatal_for_good() {
        let mut transactions = opened(&[(Commit, abortable()), (Abort, fenced())], 2);
        let fatal = transactions
            .finish(&offsets(), &group())
            .expect_err("the abort failed");
        assert!(
            fatal.reason.starts_with("abort_transaction: fatal: "),
            "{fatal}"
        );
        assert!(
            fatal.reason.contains("aborting after commit_transaction: "),
            "{fatal}"
        );
        assert_eq!(
            transactions.producer().kinds(),
            [Init, Begin, SendOffsets, Commit, Abort]
        );
        assert_failed_for_good(&mut transactions);
    }

    #[test]
    fn fenced_in_begin_is_fatal_for_good() {
        let mut transactions = machine(&[(Begin, fenced())], 2);
        assert_eq!(transactions.init(), Ok(()));
        let fatal = transactions.ensure_open().expect_err("fenced");
        assert!(
            fatal.reason.starts_with("begin_transaction: fatal: "),
            "{fatal}"
        );
        assert_eq!(transactions.producer().kinds(), [Init, Begin]);
        assert_failed_for_good(&mut transactions);
    }

    #[test]
    fn fenced_or_abortable_in_init_is_fatal_for_good() {
        for (failure, expected) in [
            (fenced(), "init_transactions: fatal: "),
            (
                abortable(),
                "init_transactions: transaction must be aborted: ",
            ),
        ] {
            let mut transactions = machine(&[(Init, failure)], 2);
            let fatal = transactions.init().expect_err("init failed");
            assert!(fatal.reason.starts_with(expected), "{fatal}");
            assert_eq!(transactions.producer().kinds(), [Init]);
            assert_failed_for_good(&mut transactions);
        }
    }

    #[test]
    fn fenced_in_an_explicit_abort_is_fatal_for_good() {
        let mut transactions = opened(&[(Abort, fenced())], 2);
        let fatal = transactions
            .abort("a record could not be enqueued")
            .expect_err("fenced");
        assert!(
            fatal.reason.contains("a record could not be enqueued"),
            "{fatal}"
        );
        assert_failed_for_good(&mut transactions);
    }

    #[test]
    fn retriable_failures_are_retried_up_to_max_retries() {
        let mut transactions = opened(
            &[
                (SendOffsets, retriable()),
                (Commit, retriable()),
                (Commit, retriable()),
            ],
            2,
        );
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(
            transactions.producer().kinds(),
            [
                Init,
                Begin,
                SendOffsets,
                SendOffsets,
                Commit,
                Commit,
                Commit
            ]
        );
        assert_offsets_only_inside_transactions(transactions.producer());
    }

    #[test]
    fn a_commit_still_retriable_after_max_retries_aborts() {
        let mut transactions = opened(
            &[
                (Commit, retriable()),
                (Commit, retriable()),
                (Commit, retriable()),
            ],
            2,
        );
        let finished = transactions.finish(&offsets(), &group());
        assert_eq!(
            finished,
            Ok(Finished::Aborted {
                reason: "commit_transaction: retriable: coordinator request timed out (retries exhausted, max_retries = 2)".into()
            })
        );
        assert_eq!(
            transactions.producer().kinds(),
            [Init, Begin, SendOffsets, Commit, Commit, Commit, Abort]
        );
        assert_eq!(transactions.state(), TxnState::Ready);
        assert_offsets_only_inside_transactions(transactions.producer());
    }

    #[test]
    fn send_offsets_still_retriable_after_max_retries_aborts_without_committing() {
        let mut transactions = opened(&[(SendOffsets, retriable()), (SendOffsets, retriable())], 1);
        let finished = transactions.finish(&offsets(), &group());
        assert!(
            matches!(finished, Ok(Finished::Aborted { .. })),
            "{finished:?}"
        );
        assert_eq!(
            transactions.producer().kinds(),
            [Init, Begin, SendOffsets, SendOffsets, Abort]
        );
        assert_offsets_only_inside_transactions(transactions.producer());
    }

    #[test]
    fn init_is_retried_then_fatal_when_retries_run_out() {
        let mut recovering = machine(&[(Init, retriable())], 1);
        assert_eq!(recovering.init(), Ok(()));
        assert_eq!(recovering.state(), TxnState::Ready);
        assert_eq!(recovering.producer().kinds(), [Init, Init]);

        let mut exhausted = machine(&[(Init, retriable()), (Init, retriable())], 1);
        let fatal = exhausted.init().expect_err("retries ran out");
        assert_eq!(
            fatal.reason,
            "init_transactions: retriable: coordinator request timed out (retries exhausted, max_retries = 1)"
        );
        assert_failed_for_good(&mut exhausted);
    }

    #[test]
    fn no_retries_means_one_attempt() {
        let mut transactions = opened(&[(Commit, retriable())], 0);
        let finished = transactions.finish(&Offsets::new(), &group());
        assert!(
            matches!(finished, Ok(Finished::Aborted { .. })),
            "{finished:?}"
        );
        assert_eq!(
            transactions.producer().kinds(),
            [Init, Begin, Commit, Abort]
        );
    }

    #[test]
    fn a_retriable_abort_is_retried() {
        let mut transactions = opened(&[(Commit, abortable()), (Abort, retriable())], 2);
        let finished = transactions.finish(&offsets(), &group());
        assert!(
            matches!(finished, Ok(Finished::Aborted { .. })),
            "{finished:?}"
        );
        assert_eq!(
            transactions.producer().kinds(),
            [Init, Begin, SendOffsets, Commit, Abort, Abort]
        );
        assert_eq!(transactions.state(), TxnState::Ready);
    }

    #[test]
    fn an_abort_failing_abortably_or_out_of_retries_is_fatal() {
        for abort_failures in [
            vec![abortable()],
            vec![retriable(), retriable(), retriable()],
        ] {
            let mut script = vec![(Commit, abortable())];
            script.extend(abort_failures.into_iter().map(|failure| (Abort, failure)));
            let mut transactions = opened(&script, 2);
            let fatal = transactions
                .finish(&offsets(), &group())
                .expect_err("the abort failed");
            assert!(fatal.reason.starts_with("abort_transaction: "), "{fatal}");
            assert_failed_for_good(&mut transactions);
        }
    }

    #[test]
    fn an_explicit_abort_discards_the_open_transaction_only() {
        let mut transactions = opened(&[], 2);
        assert_eq!(transactions.abort("shutdown"), Ok(()));
        assert_eq!(transactions.state(), TxnState::Ready);
        // Nothing open any more: neither an abort nor a finish calls the producer, so the
        // discarded batch's offsets are not committed.
        assert_eq!(transactions.abort("shutdown"), Ok(()));
        assert_eq!(
            transactions.finish(&offsets(), &group()),
            Ok(Finished::Committed)
        );
        assert_eq!(transactions.producer().kinds(), [Init, Begin, Abort]);
        assert_offsets_only_inside_transactions(transactions.producer());
    }

    #[test]
    fn using_the_machine_before_init_is_fatal_without_calls() {
        let mut opening = machine(&[], 2);
        let fatal = opening.ensure_open().expect_err("not initialised");
        assert_eq!(fatal.reason, "begin_transaction: not initialised");
        assert_eq!(opening.producer().count(), 0);
        assert_failed_for_good(&mut opening);

        let mut finishing = machine(&[], 2);
        let fatal = finishing
            .finish(&offsets(), &group())
            .expect_err("not initialised");
        assert_eq!(fatal.reason, "finish: not initialised");
        assert_eq!(finishing.producer().count(), 0);
        assert_failed_for_good(&mut finishing);

        // Nothing is open, so there is nothing to abort.
        let mut aborting = machine(&[], 2);
        assert_eq!(aborting.abort("shutdown"), Ok(()));
        assert_eq!(aborting.state(), TxnState::Uninitialised);
    }

    #[test]
    fn init_twice_initialises_once() {
        let mut transactions = opened(&[], 2);
        assert_eq!(transactions.init(), Ok(()));
        assert_eq!(transactions.state(), TxnState::Open);
        assert_eq!(transactions.producer().kinds(), [Init, Begin]);
    }

    #[test]
    fn a_kafka_error_outside_a_transaction_error_is_abortable() {
        assert_eq!(
            TxnError::from_kafka(&KafkaError::Canceled),
            TxnError::Abortable("KafkaError (Client dropped)".into())
        );
        let flush_timeout = KafkaError::Flush(rdkafka::error::RDKafkaErrorCode::OperationTimedOut);
        assert!(matches!(
            TxnError::from_kafka(&flush_timeout),
            TxnError::Abortable(_)
        ));
    }

    #[test]
    fn offsets_go_to_librdkafka_as_next_offsets_to_consume() {
        let list = offset_list(&offsets()).expect("valid offsets");
        let elements: Vec<_> = list
            .elements()
            .iter()
            .map(|element| {
                (
                    element.topic().to_owned(),
                    element.partition(),
                    element.offset(),
                )
            })
            .collect();
        assert_eq!(
            elements,
            [
                ("orders".to_owned(), 0, Offset::Offset(42)),
                ("orders".to_owned(), 3, Offset::Offset(7)),
            ]
        );
    }

    #[test]
    fn debug_shows_the_state_but_not_the_producer() {
        let transactions = machine(&[], 3);
        let shown = format!("{transactions:?}");
        assert!(shown.contains("state: Uninitialised"), "{shown}");
        assert!(!shown.contains("FakeProducer"), "{shown}");
    }

    /// What the engine does with the machine, in the property test.
    #[derive(Debug, Clone)]
    enum Op {
        EnsureOpen,
        Finish { with_offsets: bool },
        Abort,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::EnsureOpen),
            any::<bool>().prop_map(|with_offsets| Op::Finish { with_offsets }),
            Just(Op::Abort),
        ]
    }

    fn outcome() -> impl Strategy<Value = Result<(), TxnError>> {
        prop_oneof![
            4 => Just(Ok(())),
            2 => Just(retriable()),
            2 => Just(abortable()),
            1 => Just(fenced()),
        ]
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Init),
            Just(Begin),
            Just(SendOffsets),
            Just(Commit),
            Just(Abort)
        ]
    }

    proptest! {
        /// Whatever the broker answers, in whatever order the engine calls: offsets stay inside
        /// transactions, results match states, and Failed is final and silent.
        #[test]
        fn every_sequence_keeps_the_invariants(
            script in prop::collection::vec((kind(), outcome()), 0..24),
            ops in prop::collection::vec(op(), 0..24),
            max_retries in 0_u32..3,
        ) {
            let mut transactions = machine(&script, max_retries);
            let initialised = transactions.init();
            let failed = transactions.state() == TxnState::Failed;
            prop_assert_eq!(initialised.is_err(), failed);
            for op in ops {
                let before = transactions.state();
                let calls_before = transactions.producer().count();
                let result = match op {
                    Op::EnsureOpen => transactions.ensure_open().map(|()| None),
                    Op::Finish { with_offsets } => {
                        let offsets = if with_offsets { offsets() } else { Offsets::new() };
                        transactions.finish(&offsets, &group()).map(Some)
                    }
                    Op::Abort => transactions.abort("discard").map(|()| None),
                };
                let after = transactions.state();
                let new_calls: Vec<Call> =
                    transactions.producer().calls.borrow()[calls_before..].to_vec();
                if before == TxnState::Failed {
                    prop_assert!(result.is_err());
                    prop_assert!(new_calls.is_empty());
                }
                if before == TxnState::Ready && !matches!(op, Op::EnsureOpen) {
                    prop_assert!(new_calls.is_empty());
                }
                match (&op, &result) {
                    (_, Err(_)) => prop_assert_eq!(after, TxnState::Failed),
                    (Op::EnsureOpen, Ok(_)) => prop_assert_eq!(after, TxnState::Open),
                    (Op::Finish { .. } | Op::Abort, Ok(_)) => {
                        prop_assert_eq!(after, TxnState::Ready);
                    }
                }
                if before == TxnState::Open {
                    let committed = |call: &Call| call.kind == Commit && call.result.is_ok();
                    let aborted = |call: &Call| call.kind == Abort && call.result.is_ok();
                    match (&op, &result) {
                        (Op::Finish { .. }, Ok(Some(Finished::Committed))) => {
                            prop_assert!(new_calls.last().is_some_and(committed));
                            prop_assert!(new_calls.iter().all(|call| call.kind != Abort));
                        }
                        (Op::Finish { .. }, Ok(Some(Finished::Aborted { .. })))
                        | (Op::Abort, Ok(None)) => {
                            // Exactly one successful abort, last, and nothing committed.
                            prop_assert!(new_calls.last().is_some_and(aborted));
                            let aborts = new_calls.iter().filter(|call| aborted(call)).count();
                            prop_assert_eq!(aborts, 1);
                            prop_assert!(!new_calls.iter().any(committed));
                        }
                        _ => {}
                    }
                }
                // No call is attempted more than 1 + max_retries times in a row.
                let mut run = 0_u32;
                let mut previous = None;
                for call in &new_calls {
                    run = if previous == Some(call.kind) { run + 1 } else { 1 };
                    previous = Some(call.kind);
                    prop_assert!(run <= max_retries + 1);
                }
            }
            assert_offsets_only_inside_transactions(transactions.producer());
        }
    }
}
