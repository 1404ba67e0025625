//! Keyed state of one input partition, with the ledger of processed inputs that makes effects
//! effectively-once, and its changelog encoding.
//!
//! # Why this is enough without Kafka transactions
//! The engine makes an input's effects durable in a fixed order: first the outputs, then (once
//! they are acknowledged) a changelog record holding the key's new state **and** the id of the
//! input in a ring of recently applied inputs, and only then the input offset. A key changed by
//! several inputs before its record is written gets one record listing all of them
//! ([`PartitionStore::take_changes`]). A crash can land between any two steps:
//! - before the changelog record is durable, the input is re-delivered and handled again from the
//!   same state; handlers are deterministic (their clock is the input record's timestamp), so any
//!   output re-sent is byte-identical to the first, with the same event id;
//! - after it, the input is found in the ring and skipped: its outputs were durable before the
//!   record that lists it.
//!
//! The ring also catches an input that arrives twice from upstream (same event id), as long as it
//! is remembered ([`DedupPolicy`]).
//!
//! # Memory
//! A partition store holds every key of its partition with state or ring entries. Rings are
//! bounded per key (`max_per_key`) and by age (`retention`), but never drop an input whose offset
//! is not committed yet: a crash would re-deliver it. A key whose state is deleted and whose ring
//! has aged out is removed and tombstoned in the changelog by [`PartitionStore::expire`].
//!
//! # Timers
//! A handler may ask to be called back at a time its state names ([`crate::Handler::timer`]).
//! The store keeps an index of those due times, rebuilt from the state after a restore, so a
//! timer survives restarts and rebalances: it lives in the state, not in memory.

use std::collections::{BTreeSet, HashMap, VecDeque};

use retail_events::{EventId, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An input applied to a key: a ring entry, written with every change of the key, so it is kept
/// small (about 30 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The input event's id, as its 128 bits.
    pub event_id: u128,
    /// FNV-1a hash of the input's topic name (see [`topic_hash`]): which committed offset
    /// applies to `offset`, without repeating the name in every entry.
    pub topic: u32,
    /// The input's offset.
    pub offset: i64,
    /// When it was applied; rings age out by it.
    pub applied_at: Timestamp,
}

impl Applied {
    /// The entry for an input of `topic` at `offset`.
    pub fn new(event_id: EventId, topic: &str, offset: i64, applied_at: Timestamp) -> Self {
        Self {
            event_id: event_id.as_uuid().as_u128(),
            topic: topic_hash(topic),
            offset,
            applied_at,
        }
    }
}

/// FNV-1a (32-bit) of a topic name; stable across builds and processes, unlike `std`'s hasher.
pub fn topic_hash(topic: &str) -> u32 {
    topic.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Everything stored under one key: one changelog record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<S> {
    /// The handler's state; `None` once deleted (the ring may outlive it).
    pub value: Option<S>,
    /// Recent inputs applied to the key, oldest first.
    pub applied: VecDeque<Applied>,
}

/// How long processed event ids are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupPolicy {
    /// Ring entries older than this are dropped (once their offset is committed).
    pub retention_micros: i64,
    /// At most this many ring entries per key; the oldest committed ones go first.
    pub max_per_key: usize,
}

impl Default for DedupPolicy {
    fn default() -> Self {
        Self {
            retention_micros: 60 * 60 * 1_000_000,
            max_per_key: 32,
        }
    }
}

/// A changelog record to produce: `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// The state key.
    pub key: String,
    /// The encoded [`Entry`], or `None` to delete the key.
    pub value: Option<Vec<u8>>,
}

/// What the store knows of an input before the handler sees it.
#[derive(Debug, PartialEq)]
pub enum Seen<S> {
    /// Not applied before: hand the handler this state.
    New(Option<S>),
    /// Applied before, and its outputs were durable before that: skip it.
    Duplicate,
}

/// The changelog holds a record that does not decode as this build's state type.
#[derive(Debug, thiserror::Error)]
#[error("changelog record for key {key} does not decode: {source}")]
pub struct CorruptChangelog {
    /// The key.
    pub key: String,
    /// Why.
    pub source: postcard::Error,
}

/// The state of one input partition.
#[derive(Debug)]
pub struct PartitionStore<S> {
    /// Entries by state key.
    entries: HashMap<String, Entry<S>>,
    /// First offset not yet committed, per input topic (by [`topic_hash`]); ring entries below
    /// it may age out.
    committed: Committed,
    /// Ring bounds.
    policy: DedupPolicy,
    /// Due timers, earliest first.
    timers: TimeIndex,
    /// Keys whose work is open (an order in flight), by the time it opened: the oldest tells
    /// how long work has been stuck.
    open: TimeIndex,
    /// Keys changed since their last changelog record ([`PartitionStore::take_changes`]): a key
    /// changed by many inputs of one batch is written once, as Kafka Streams' record cache does.
    dirty: BTreeSet<String>,
}

/// Keys indexed by a time, earliest first, with at most one time per key.
#[derive(Debug, Default)]
struct TimeIndex {
    /// (time in microseconds, key), earliest first.
    by_time: BTreeSet<(i64, String)>,
    /// The time indexed for each key.
    of_key: HashMap<String, i64>,
}

impl TimeIndex {
    /// Indexes `key` at `time`, or removes it (`None`).
    fn set(&mut self, key: &str, time: Option<Timestamp>) {
        if let Some(previous) = self.of_key.remove(key) {
            self.by_time.remove(&(previous, key.to_owned()));
        }
        if let Some(time) = time {
            self.of_key.insert(key.to_owned(), time.as_micros());
            self.by_time.insert((time.as_micros(), key.to_owned()));
        }
    }

    fn clear(&mut self) {
        self.by_time.clear();
        self.of_key.clear();
    }

    /// Keys indexed at or before `now`, earliest first, at most `limit`.
    fn up_to(&self, now: Timestamp, limit: usize) -> Vec<String> {
        self.by_time
            .iter()
            .take_while(|(time, _)| *time <= now.as_micros())
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect()
    }

    fn earliest(&self) -> Option<Timestamp> {
        self.by_time
            .first()
            .map(|(time, _)| Timestamp::from_micros(*time))
    }

    fn len(&self) -> usize {
        self.by_time.len()
    }
}

impl<S: Serialize + DeserializeOwned + Clone> PartitionStore<S> {
    /// An empty store.
    pub fn new(policy: DedupPolicy) -> Self {
        Self {
            entries: HashMap::new(),
            committed: Committed::default(),
            policy,
            timers: TimeIndex::default(),
            open: TimeIndex::default(),
            dirty: BTreeSet::new(),
        }
    }

    /// Applies one changelog record read during restore (later records win; `None` deletes).
    pub fn restore_record(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), CorruptChangelog> {
        match value {
            None => {
                self.entries.remove(key);
            }
            Some(bytes) => {
                let entry: Entry<S> =
                    postcard::from_bytes(bytes).map_err(|source| CorruptChangelog {
                        key: key.to_owned(),
                        source,
                    })?;
                self.entries.insert(key.to_owned(), entry);
            }
        }
        Ok(())
    }

    /// Looks an input up before handling it.
    pub fn seen(&self, key: &str, event_id: EventId) -> Seen<S> {
        let Some(entry) = self.entries.get(key) else {
            return Seen::New(None);
        };
        let id = event_id.as_uuid().as_u128();
        if entry.applied.iter().any(|applied| applied.event_id == id) {
            Seen::Duplicate
        } else {
            Seen::New(entry.value.clone())
        }
    }

    /// Records that an input was applied: stores the new state and the ring entry, and prunes
    /// the ring. The key's changelog record is made by the next [`Self::take_changes`].
    pub fn apply(&mut self, key: &str, value: Option<S>, applied: Applied) {
        let now = applied.applied_at;
        let entry = changed_entry(&mut self.entries, &mut self.dirty, key);
        entry.value = value;
        entry.applied.push_back(applied);
        prune(entry, &self.committed, self.policy, now);
        // The entry just pushed is uncommitted, so the ring is not empty: deleted keys are
        // removed by `expire` once their ring has aged out.
    }

    /// Replaces a key's state without an input (a timer fired): the ring is kept as it is.
    pub fn set(&mut self, key: &str, value: Option<S>, now: Timestamp) {
        let entry = changed_entry(&mut self.entries, &mut self.dirty, key);
        entry.value = value;
        prune(entry, &self.committed, self.policy, now);
    }

    /// The changelog records of the keys changed since the last call, one per key with its
    /// current entry (state and ring), in key order.
    pub fn take_changes(&mut self) -> Vec<ChangelogRecord> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|key| {
                // A changed key is only removed by `expire`, which tombstones it itself.
                let entry = self.entries.get(&key)?;
                let encoded = postcard::to_stdvec(entry)
                    // Serialising plain data into a Vec cannot fail short of a type the format
                    // cannot express, which the `Handler::State` docs rule out; make it loud.
                    .unwrap_or_else(|error| {
                        panic!("state of key {key} cannot be encoded with postcard: {error}")
                    });
                Some(ChangelogRecord {
                    key,
                    value: Some(encoded),
                })
            })
            .collect()
    }

    /// True if some key changed since the last [`Self::take_changes`].
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Forgets the changes not yet written (their batch was aborted; the state is restored).
    pub fn discard_changes(&mut self) {
        self.dirty.clear();
    }

    /// Indexes `key`'s timer at `due`, or removes it (`None`).
    pub fn schedule(&mut self, key: &str, due: Option<Timestamp>) {
        self.timers.set(key, due);
    }

    /// Indexes `key` as open since `since`, or as not open (`None`).
    pub fn track_open(&mut self, key: &str, since: Option<Timestamp>) {
        self.open.set(key, since);
    }

    /// Rebuilds the timer and open-work indexes from every key's state (after a restore):
    /// `timer` tells a state's due time, `open_since` since when its work is open.
    pub fn rebuild_indexes(
        &mut self,
        timer: impl Fn(&S) -> Option<Timestamp>,
        open_since: impl Fn(&S) -> Option<Timestamp>,
    ) {
        self.timers.clear();
        self.open.clear();
        for (key, entry) in &self.entries {
            if let Some(value) = entry.value.as_ref() {
                self.timers.set(key, timer(value));
                self.open.set(key, open_since(value));
            }
        }
    }

    /// Keys whose timer is due at `now`, earliest first, at most `limit`.
    pub fn due_timers(&self, now: Timestamp, limit: usize) -> Vec<String> {
        self.timers.up_to(now, limit)
    }

    /// Number of timers indexed.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Number of keys whose work is open, and since when the oldest is.
    pub fn open_work(&self) -> (usize, Option<Timestamp>) {
        (self.open.len(), self.open.earliest())
    }

    /// Notes that offsets of `topic` below `next_offset` are committed: their ring entries may
    /// age out (lazily, when their key is next written or at the next `expire`).
    pub fn committed(&mut self, topic: &str, next_offset: i64) {
        self.committed.note(topic_hash(topic), next_offset);
    }

    /// Prunes every key's ring and removes keys with no state and an empty ring, returning
    /// their tombstones. Run periodically: it visits every key.
    pub fn expire(&mut self, now: Timestamp) -> Vec<ChangelogRecord> {
        let mut tombstones = Vec::new();
        let (committed, policy) = (&self.committed, self.policy);
        self.entries.retain(|key, entry| {
            prune(entry, committed, policy, now);
            let keep = entry.value.is_some() || !entry.applied.is_empty();
            if !keep {
                tombstones.push(ChangelogRecord {
                    key: key.clone(),
                    value: None,
                });
            }
            keep
        });
        tombstones
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state of a key (for tests and diagnostics).
    pub fn value(&self, key: &str) -> Option<&S> {
        self.entries.get(key).and_then(|entry| entry.value.as_ref())
    }
}

/// The entry of `key`, created empty if missing, marked as changed.
fn changed_entry<'a, S>(
    entries: &'a mut HashMap<String, Entry<S>>,
    dirty: &mut BTreeSet<String>,
    key: &str,
) -> &'a mut Entry<S> {
    if !dirty.contains(key) {
        dirty.insert(key.to_owned());
    }
    if !entries.contains_key(key) {
        entries.insert(
            key.to_owned(),
            Entry {
                value: None,
                applied: VecDeque::new(),
            },
        );
    }
    entries
        .get_mut(key)
        .unwrap_or_else(|| unreachable!("the entry of {key} was just inserted"))
}

/// First offset not yet committed per input topic (by [`topic_hash`]): a handful of topics, so
/// a list, searched on every ring entry a prune looks at.
#[derive(Debug, Default)]
struct Committed(Vec<(u32, i64)>);

impl Committed {
    fn note(&mut self, topic: u32, next_offset: i64) {
        match self.0.iter_mut().find(|(known, _)| *known == topic) {
            Some((_, current)) => *current = (*current).max(next_offset),
            None => self.0.push((topic, next_offset)),
        }
    }

    fn covers(&self, applied: &Applied) -> bool {
        self.0
            .iter()
            .find(|(topic, _)| *topic == applied.topic)
            .is_some_and(|(_, next_offset)| applied.offset < *next_offset)
    }
}

fn prune<S>(entry: &mut Entry<S>, committed: &Committed, policy: DedupPolicy, now: Timestamp) {
    let oldest_allowed = now.as_micros().saturating_sub(policy.retention_micros);
    // Entries are appended as they are applied, so the first is the oldest: a ring whose first
    // entry is young has nothing to age out. Uncommitted entries stay whatever their age: they
    // are what a crash would re-deliver.
    if entry
        .applied
        .front()
        .is_some_and(|first| first.applied_at.as_micros() < oldest_allowed)
    {
        entry.applied.retain(|applied| {
            applied.applied_at.as_micros() >= oldest_allowed || !committed.covers(applied)
        });
    }
    // Over the bound, the oldest committed entries go. If every entry is uncommitted (more
    // inputs of the key in flight than the ring holds), all stay: a crash would re-deliver
    // them, and they must be recognised.
    let mut excess = entry.applied.len().saturating_sub(policy.max_per_key);
    if excess > 0 {
        entry.applied.retain(|applied| {
            if excess > 0 && committed.covers(applied) {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> EventId {
        EventId::from_u128(n)
    }

    fn applied(n: u128, offset: i64, at: i64) -> Applied {
        Applied::new(id(n), "in", offset, Timestamp::from_micros(at))
    }

    /// The changelog record of `key` among the store's pending changes (which are taken).
    fn record_of(store: &mut PartitionStore<u32>, key: &str) -> ChangelogRecord {
        store
            .take_changes()
            .into_iter()
            .find(|record| record.key == key)
            .expect("a changelog record of the key")
    }

    fn store() -> PartitionStore<u32> {
        PartitionStore::new(DedupPolicy {
            retention_micros: 1_000,
            max_per_key: 3,
        })
    }

    #[test]
    fn a_new_input_gets_the_current_state_and_an_applied_one_is_a_duplicate() {
        let mut store = store();
        assert_eq!(store.seen("k", id(1)), Seen::New(None));
        store.apply("k", Some(5), applied(1, 10, 0));
        assert_eq!(store.seen("k", id(2)), Seen::New(Some(5)));
        assert_eq!(store.seen("k", id(1)), Seen::Duplicate);
        assert_eq!(store.seen("other", id(1)), Seen::New(None));
    }

    #[test]
    fn timers_are_indexed_by_due_time_and_rebuilt_from_state_after_a_restore() {
        let mut store = store();
        store.apply("late", Some(300), applied(1, 10, 0));
        let record = record_of(&mut store, "late");
        store.schedule("late", Some(Timestamp::from_micros(300)));
        store.apply("early", Some(100), applied(2, 11, 0));
        store.schedule("early", Some(Timestamp::from_micros(100)));
        store.apply("none", Some(0), applied(3, 12, 0));
        store.schedule("none", None);
        assert!(store.due_timers(Timestamp::from_micros(99), 10).is_empty());
        assert_eq!(store.due_timers(Timestamp::from_micros(100), 10), ["early"]);
        assert_eq!(
            store.due_timers(Timestamp::from_micros(1_000), 10),
            ["early", "late"]
        );
        assert_eq!(
            store.due_timers(Timestamp::from_micros(1_000), 1),
            ["early"]
        );
        // Rescheduling moves the key; clearing removes it.
        store.schedule("early", Some(Timestamp::from_micros(500)));
        assert_eq!(
            store.due_timers(Timestamp::from_micros(1_000), 10),
            ["late", "early"]
        );
        store.schedule("early", None);
        assert_eq!(store.timer_count(), 1);

        // A timer fired: the state changes without a ring entry.
        store.take_changes();
        store.set("late", Some(301), Timestamp::from_micros(400));
        let fired = record_of(&mut store, "late");
        let mut restored: PartitionStore<u32> = PartitionStore::new(DedupPolicy::default());
        for record in [&record, &fired] {
            restored
                .restore_record(&record.key, record.value.as_deref())
                .expect("decodes");
        }
        assert_eq!(restored.value("late"), Some(&301));
        assert_eq!(restored.seen("late", id(1)), Seen::Duplicate);
        // The state says when: here, the value is the due time.
        restored.rebuild_indexes(
            |value| Some(Timestamp::from_micros(i64::from(*value))),
            |_| None,
        );
        assert_eq!(
            restored.due_timers(Timestamp::from_micros(301), 10),
            ["late"]
        );
    }

    #[test]
    fn the_changelog_record_restores_the_same_state_and_ring() {
        let mut store = store();
        store.apply("k", Some(7), applied(1, 10, 0));
        let record = record_of(&mut store, "k");
        let mut restored: PartitionStore<u32> = PartitionStore::new(DedupPolicy::default());
        restored
            .restore_record(&record.key, record.value.as_deref())
            .expect("decodes");
        assert_eq!(restored.value("k"), Some(&7));
        assert_eq!(restored.seen("k", id(1)), Seen::Duplicate);
    }

    #[test]
    fn a_record_stays_small_however_many_inputs_a_key_has_seen() {
        let mut store = PartitionStore::<u32>::new(DedupPolicy::default());
        let mut largest = 0;
        for n in 0..1_000 {
            if n % 100 == 0 {
                store.committed("in", n as i64);
            }
            store.apply("k", Some(n as u32), applied(n, n as i64, 0));
            let record = record_of(&mut store, "k");
            largest = largest.max(record.value.map_or(0, |value| value.len()));
        }
        // At most max_per_key (32) committed ring entries plus up to 100 uncommitted ones, each
        // about 30 bytes.
        assert!(
            largest < 5_000,
            "a changelog record grew to {largest} bytes"
        );
    }

    #[test]
    fn a_key_changed_by_many_inputs_of_a_batch_is_written_once_with_all_of_them() {
        let mut store = store();
        for n in 0..5 {
            store.apply("busy", Some(n as u32), applied(n, n as i64, 0));
        }
        store.apply("quiet", Some(1), applied(9, 9, 0));
        let records = store.take_changes();
        let keys: Vec<&str> = records.iter().map(|record| record.key.as_str()).collect();
        assert_eq!(keys, ["busy", "quiet"]);
        assert!(store.take_changes().is_empty(), "changes are taken once");

        let mut restored: PartitionStore<u32> = PartitionStore::new(DedupPolicy::default());
        for record in &records {
            restored
                .restore_record(&record.key, record.value.as_deref())
                .expect("decodes");
        }
        assert_eq!(restored.value("busy"), Some(&4));
        assert!((0..5).all(|n| restored.seen("busy", id(n)) == Seen::Duplicate));
        assert_eq!(restored.seen("quiet", id(9)), Seen::Duplicate);

        store.apply("busy", Some(7), applied(10, 10, 0));
        store.discard_changes();
        assert!(
            store.take_changes().is_empty(),
            "discarded changes are not written"
        );
    }

    #[test]
    fn topic_hashes_are_stable_and_distinct() {
        // FNV-1a test vector: "a" → 0xe40c292c.
        assert_eq!(topic_hash("a"), 0xe40c_292c);
        assert_ne!(
            topic_hash("storefront.orders.v1"),
            topic_hash("payments.payments.v1")
        );
    }

    #[test]
    fn rings_are_bounded_but_never_drop_uncommitted_inputs() {
        let mut store = store();
        for n in 0..6 {
            store.apply("k", Some(n as u32), applied(n, n as i64, 0));
        }
        // Nothing committed: all six kept, although max_per_key is 3.
        assert!((0..6).all(|n| store.seen("k", id(n)) == Seen::Duplicate));
        store.committed("in", 4);
        store.apply("k", Some(9), applied(6, 6, 0));
        // Committed entries go first, oldest first; 4, 5 and 6 are uncommitted and stay.
        assert_eq!(store.seen("k", id(0)), Seen::New(Some(9)));
        assert_eq!(store.seen("k", id(3)), Seen::New(Some(9)));
        assert!((4..7).all(|n| store.seen("k", id(n)) == Seen::Duplicate));
    }

    #[test]
    fn open_work_counts_open_keys_and_knows_the_oldest_also_after_a_restore() {
        let mut store = store();
        assert_eq!(store.open_work(), (0, None));
        store.apply("a", Some(50), applied(1, 10, 0));
        let first = record_of(&mut store, "a");
        store.track_open("a", Some(Timestamp::from_micros(50)));
        store.apply("b", Some(20), applied(2, 11, 0));
        let second = record_of(&mut store, "b");
        store.track_open("b", Some(Timestamp::from_micros(20)));
        assert_eq!(store.open_work(), (2, Some(Timestamp::from_micros(20))));
        // "b" finishes: "a" is the oldest left.
        store.track_open("b", None);
        assert_eq!(store.open_work(), (1, Some(Timestamp::from_micros(50))));

        let mut restored: PartitionStore<u32> = PartitionStore::new(DedupPolicy::default());
        for record in [&first, &second] {
            restored
                .restore_record(&record.key, record.value.as_deref())
                .expect("decodes");
        }
        // Here a state is open since its value, unless it is above 40.
        restored.rebuild_indexes(
            |_| None,
            |value| (*value <= 40).then(|| Timestamp::from_micros(i64::from(*value))),
        );
        assert_eq!(restored.open_work(), (1, Some(Timestamp::from_micros(20))));
        assert_eq!(restored.timer_count(), 0);
    }

    #[test]
    fn deleted_keys_are_tombstoned_once_their_ring_ages_out() {
        let mut store = store();
        store.apply("gone", None, applied(1, 10, 0));
        store.apply("kept", Some(3), applied(2, 11, 0));
        // Not yet committed: nothing expires, whatever the age.
        assert!(store.expire(Timestamp::from_micros(5_000)).is_empty());
        store.committed("in", 12);
        // Committed but young: still remembered.
        assert!(store.expire(Timestamp::from_micros(500)).is_empty());
        assert_eq!(store.seen("gone", id(1)), Seen::Duplicate);

        let tombstones = store.expire(Timestamp::from_micros(5_000));
        assert_eq!(
            tombstones,
            vec![ChangelogRecord {
                key: "gone".into(),
                value: None
            }]
        );
        assert_eq!(store.len(), 1);
        assert_eq!(
            store.seen("kept", id(2)),
            Seen::New(Some(3)),
            "aged out of the ring, state kept"
        );

        let mut restored: PartitionStore<u32> = PartitionStore::new(DedupPolicy::default());
        store.apply("kept", Some(4), applied(3, 12, 6_000));
        let record = record_of(&mut store, "kept");
        restored
            .restore_record("gone", Some(&[0xff]))
            .expect_err("garbage does not decode");
        restored
            .restore_record(&record.key, record.value.as_deref())
            .expect("decodes");
        restored.restore_record("kept", None).expect("tombstone");
        assert!(restored.is_empty());
    }
}
