//! Which input offsets may be stored: batches of processed inputs wait here until every record
//! they produced (outputs, changelog, dead letters) is acknowledged by the broker.
//!
//! The processing thread opens a batch, produces its records tagged with the batch's sequence
//! number, and seals it with the offsets its inputs reached. The producer's delivery callback
//! (on librdkafka's thread) counts acknowledgements. Offsets are released strictly in batch
//! order: a later batch that completes first waits for the earlier ones, so a stored offset never
//! skips an input whose effects are not yet durable.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Input position reached: `(topic, partition)` → next offset to consume.
pub type Offsets = BTreeMap<(String, i32), i64>;

#[derive(Debug)]
struct Batch {
    seq: u64,
    /// Records produced but not yet acknowledged.
    pending: usize,
    /// Inputs the batch covers, for the in-flight bound.
    inputs: usize,
    /// Set when the processing thread has produced everything of the batch.
    sealed: Option<Offsets>,
}

#[derive(Debug, Default)]
struct State {
    batches: VecDeque<Batch>,
    next_seq: u64,
    /// The first delivery failure; fatal for at-least-once (offsets must not move past it).
    failure: Option<String>,
}

/// Batches awaiting acknowledgement. Shared between the processing thread and the producer's
/// delivery callback.
#[derive(Debug, Default)]
pub struct InFlight {
    state: Mutex<State>,
    /// Signalled on every acknowledgement.
    acknowledged: Condvar,
}

/// A delivery failure: the broker did not take a record. Processing must stop without storing
/// the offsets of the batch (or any later one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a produced record was not delivered: {0}")]
pub struct DeliveryFailed(pub String);

impl InFlight {
    /// No batches.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the next batch and returns its sequence number, which tags its records.
    pub fn open(&self) -> u64 {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.batches.push_back(Batch {
            seq,
            pending: 0,
            inputs: 0,
            sealed: None,
        });
        seq
    }

    /// Counts a record about to be produced for batch `seq`. Call before producing: its
    /// acknowledgement may arrive before `produce` returns.
    pub fn expect(&self, seq: u64) {
        let mut state = self.lock();
        if let Some(batch) = state.batches.iter_mut().find(|batch| batch.seq == seq) {
            batch.pending += 1;
        }
    }

    /// Takes back an expectation whose record could not be enqueued (it will be retried).
    pub fn unexpect(&self, seq: u64) {
        self.acknowledge(seq, Ok(()));
    }

    /// The delivery callback: one record of batch `seq` is acknowledged (or failed).
    pub fn acknowledge(&self, seq: u64, result: Result<(), String>) {
        let mut state = self.lock();
        if let Err(error) = result {
            state.failure.get_or_insert(error);
        }
        if let Some(batch) = state.batches.iter_mut().find(|batch| batch.seq == seq) {
            batch.pending = batch.pending.saturating_sub(1);
        }
        drop(state);
        self.acknowledged.notify_all();
    }

    /// Marks batch `seq` as fully produced, covering `inputs` inputs that reached `offsets`.
    pub fn seal(&self, seq: u64, inputs: usize, offsets: Offsets) {
        let mut state = self.lock();
        if let Some(batch) = state.batches.iter_mut().find(|batch| batch.seq == seq) {
            batch.inputs = inputs;
            batch.sealed = Some(offsets);
        }
        drop(state);
        self.acknowledged.notify_all();
    }

    /// Removes the leading batches that are sealed and fully acknowledged and returns the
    /// furthest offsets they reached. Fails once any delivery failed.
    pub fn take_completed(&self) -> Result<Offsets, DeliveryFailed> {
        let mut state = self.lock();
        if let Some(failure) = &state.failure {
            return Err(DeliveryFailed(failure.clone()));
        }
        let mut reached = Offsets::new();
        while state
            .batches
            .front()
            .is_some_and(|batch| batch.pending == 0 && batch.sealed.is_some())
        {
            if let Some(Batch {
                sealed: Some(offsets),
                ..
            }) = state.batches.pop_front()
            {
                reached.extend(offsets);
            }
        }
        Ok(reached)
    }

    /// Waits until every record produced so far for batch `seq` is acknowledged, or until
    /// `deadline`; true if it was. Fails on a delivery failure.
    pub fn wait_batch(&self, seq: u64, deadline: Instant) -> Result<bool, DeliveryFailed> {
        loop {
            {
                let state = self.lock();
                if let Some(failure) = &state.failure {
                    return Err(DeliveryFailed(failure.clone()));
                }
                let pending = state
                    .batches
                    .iter()
                    .find(|batch| batch.seq == seq)
                    .map_or(0, |batch| batch.pending);
                if pending == 0 {
                    return Ok(true);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.wait((deadline - now).min(Duration::from_millis(50)));
        }
    }

    /// Forgets every batch (exactly-once mode, once a transaction has committed or aborted: the
    /// transaction, not this ledger, decides what is durable). Later acknowledgements of the
    /// forgotten batches are ignored.
    pub fn clear(&self) {
        self.lock().batches.clear();
        self.acknowledged.notify_all();
    }

    /// Inputs processed whose effects are not yet acknowledged.
    pub fn inputs_in_flight(&self) -> usize {
        self.lock().batches.iter().map(|batch| batch.inputs).sum()
    }

    /// True if nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.lock().batches.is_empty()
    }

    /// Waits up to `timeout` for the next acknowledgement (or a seal).
    pub fn wait(&self, timeout: Duration) {
        let state = self.lock();
        let _unused = self
            .acknowledged
            .wait_timeout(state, timeout)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Waits until every sealed batch is acknowledged, or until `deadline`. Returns the offsets
    /// completed meanwhile; fails on a delivery failure.
    pub fn wait_all(&self, deadline: Instant) -> Result<Offsets, DeliveryFailed> {
        let mut reached = Offsets::new();
        loop {
            reached.extend(self.take_completed()?);
            let now = Instant::now();
            if self.is_empty() || now >= deadline {
                return Ok(reached);
            }
            self.wait((deadline - now).min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(partition: i32, next: i64) -> Offsets {
        Offsets::from([(("in".to_owned(), partition), next)])
    }

    #[test]
    fn offsets_are_released_in_batch_order_once_acknowledged() {
        let inflight = InFlight::new();
        let first = inflight.open();
        inflight.expect(first);
        inflight.expect(first);
        inflight.seal(first, 2, offsets(0, 10));
        let second = inflight.open();
        inflight.expect(second);
        inflight.seal(second, 1, offsets(0, 11));
        assert_eq!(inflight.inputs_in_flight(), 3);

        // The second batch completes first: nothing is released yet.
        inflight.acknowledge(second, Ok(()));
        assert_eq!(inflight.take_completed(), Ok(Offsets::new()));
        inflight.acknowledge(first, Ok(()));
        assert_eq!(inflight.take_completed(), Ok(Offsets::new()));
        inflight.acknowledge(first, Ok(()));
        assert_eq!(inflight.take_completed(), Ok(offsets(0, 11)));
        assert!(inflight.is_empty());
    }

    #[test]
    fn an_unsealed_batch_is_not_complete_even_with_nothing_pending() {
        let inflight = InFlight::new();
        let seq = inflight.open();
        inflight.expect(seq);
        // Acknowledged before the batch is sealed: the thread may still produce into it.
        inflight.acknowledge(seq, Ok(()));
        assert_eq!(inflight.take_completed(), Ok(Offsets::new()));
        inflight.seal(seq, 1, offsets(1, 5));
        assert_eq!(inflight.take_completed(), Ok(offsets(1, 5)));
    }

    #[test]
    fn a_failed_delivery_stops_every_later_release() {
        let inflight = InFlight::new();
        let seq = inflight.open();
        inflight.expect(seq);
        inflight.seal(seq, 1, offsets(0, 3));
        inflight.acknowledge(seq, Err("message timed out".into()));
        assert_eq!(
            inflight.take_completed(),
            Err(DeliveryFailed("message timed out".into()))
        );
        let later = inflight.open();
        inflight.seal(later, 0, offsets(0, 4));
        assert!(inflight.take_completed().is_err());
    }

    #[test]
    fn wait_batch_sees_one_batch_acknowledged_while_it_is_still_open() {
        let inflight = InFlight::new();
        let seq = inflight.open();
        inflight.expect(seq);
        assert_eq!(
            inflight.wait_batch(seq, Instant::now() + Duration::from_millis(20)),
            Ok(false)
        );
        inflight.acknowledge(seq, Ok(()));
        assert_eq!(inflight.wait_batch(seq, Instant::now()), Ok(true));
        // Still open: its offsets are not released.
        assert_eq!(inflight.take_completed(), Ok(Offsets::new()));
    }

    #[test]
    fn clear_forgets_every_batch_and_late_acknowledgements() {
        let inflight = InFlight::new();
        let seq = inflight.open();
        inflight.expect(seq);
        inflight.seal(seq, 4, offsets(0, 9));
        assert_eq!(inflight.inputs_in_flight(), 4);
        inflight.clear();
        assert!(inflight.is_empty());
        assert_eq!(inflight.inputs_in_flight(), 0);
        // The forgotten batch's acknowledgement arrives later: nothing to release.
        inflight.acknowledge(seq, Ok(()));
        assert_eq!(inflight.take_completed(), Ok(Offsets::new()));
    }

    #[test]
    fn wait_all_returns_at_the_deadline_with_what_completed() {
        let inflight = InFlight::new();
        let done = inflight.open();
        inflight.seal(done, 0, offsets(0, 1));
        let stuck = inflight.open();
        inflight.expect(stuck);
        inflight.seal(stuck, 1, offsets(0, 2));
        let started = Instant::now();
        let reached = inflight
            .wait_all(Instant::now() + Duration::from_millis(120))
            .expect("no failure");
        assert_eq!(reached, offsets(0, 1));
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(!inflight.is_empty());
    }
}
