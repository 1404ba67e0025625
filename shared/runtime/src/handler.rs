//! What a worker writes: a pure handler from an event and the state of its key to events out.
//!
//! A handler never touches Kafka. The runtime gives it one input event, the state stored under
//! the input record's key (or nothing, for a stateless handler), and a [`Context`] to emit
//! events into; it returns `Ok` or says why the event cannot be handled. The runtime makes the
//! effects durable: state to a changelog topic, outputs to their topics, and only then the input
//! offset. Handlers are unit-tested by calling [`Handler::handle`] directly.

use retail_events::{Envelope, Event, EventType, Timestamp, Topic};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A worker's business logic.
pub trait Handler: Send + Sync + 'static {
    /// The state kept per input record key. `()` for a stateless handler.
    ///
    /// State is written to the changelog with `postcard`, a compact format that is not
    /// self-describing: plain structs, enums, maps and vectors work; `#[serde(flatten)]` and
    /// untagged enums do not.
    type State: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + 'static;

    /// Name of the state store, which names its changelog topic (`<group>.<store>.changelog`);
    /// `None` for a stateless handler, which then has no changelog and whose outputs are a
    /// function of the input alone.
    const STORE: Option<&'static str>;

    /// The topics the handler reads. They must have the same partition count, and their records
    /// are keyed by the same thing (the state key): the state of partition `p` of every input
    /// lives in partition `p` of the changelog.
    fn inputs(&self) -> Vec<Topic>;

    /// The topics the handler writes (the topics of the event types it emits). The runtime
    /// creates them when topic creation is on; emitting to another topic is allowed but the topic
    /// must then exist.
    fn outputs(&self) -> Vec<Topic>;

    /// Handles one event.
    ///
    /// `state` is the state of the input record's key: `None` if there is none yet; set it to
    /// `None` to delete it. Emit events with [`Context::emit`], building their envelopes with
    /// [`Context::envelope_for`] so their ids are derived from the input's.
    ///
    /// Events of a type the handler does not use are ignored by returning `Ok(())`.
    fn handle(
        &self,
        event: &Event,
        state: &mut Option<Self::State>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError>;

    /// When `state` wants [`Handler::on_timer`] called, if ever: a deadline, a pick-and-pack
    /// time, a retention period. The due time lives in the state, so the timer survives
    /// restarts and rebalances; the runtime asks again after every change of the state.
    fn timer(&self, state: &Self::State) -> Option<Timer> {
        let _ = state;
        None
    }

    /// The handler's own metrics, recorded with the `metrics` macros beside the runtime's: the
    /// runtime describes them (`# HELP` lines) and the metrics catalogue lists them.
    fn metrics(&self) -> &'static [crate::telemetry::MetricInfo] {
        &[]
    }

    /// Since when the work `state` tracks has been open, while it is unfinished: an order
    /// waiting for its answers, a message waiting for its contact. `None` (the default) for
    /// finished or untracked work.
    ///
    /// The runtime keeps these indexed like timers and reports how many keys are open and the
    /// age of the oldest (`worker_open_items`, `worker_oldest_open_item_age_seconds`): work in
    /// flight on a dashboard, and an alert when it gets stuck.
    fn open_since(&self, state: &Self::State) -> Option<Timestamp> {
        let _ = state;
        None
    }

    /// The timer of `key`'s state is due (the wall clock passed [`Timer::due`]). Same contract
    /// as [`Handler::handle`]: change the state, emit events. The context's input is
    /// [`Timer::cause`] and its clock is the due time, so a timer that fires again after a crash
    /// emits the very same events.
    ///
    /// The handler must move or clear the timer (through the state); a failure is logged and
    /// the timer is tried again a little later.
    fn on_timer(
        &self,
        key: &str,
        state: &mut Option<Self::State>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let _ = (key, state, context);
        Ok(())
    }
}

/// A callback a state asks for: when, and on behalf of which event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// When to call [`Handler::on_timer`].
    pub due: Timestamp,
    /// The event the timer's outputs are caused by (kept in the state): their ids are derived
    /// from it, and they carry its correlation id.
    pub cause: Envelope,
}

/// Why a handler could not handle an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The event can never be handled (semantically invalid: a negative quantity, an unknown
    /// SKU). It goes to the dead-letter topic with the reason; processing continues.
    #[error("{reason}")]
    Rejected {
        /// Why, for the dead-letter headers and the on-call engineer.
        reason: String,
    },
    /// Something outside the handler failed and may work later (a webhook timed out). The
    /// runtime retries with back-off, then dead-letters the event.
    #[error("{reason}")]
    Retriable {
        /// What failed.
        reason: String,
    },
}

impl HandlerError {
    /// A permanent rejection.
    pub fn rejected(reason: impl Into<String>) -> Self {
        Self::Rejected {
            reason: reason.into(),
        }
    }

    /// A failure worth retrying.
    pub fn retriable(reason: impl Into<String>) -> Self {
        Self::Retriable {
            reason: reason.into(),
        }
    }
}

/// What a handler sees besides the event and its state, and where it puts its outputs.
#[derive(Debug)]
pub struct Context<'a> {
    /// The input event's envelope: outputs are caused by it.
    input: &'a Envelope,
    /// The worker's name, written as `producer` into output envelopes.
    worker: &'a str,
    /// The handler's clock: the input record's Kafka timestamp (the time its producer wrote
    /// it). Fixed for every re-delivery of the record, so handling is deterministic and a
    /// re-processed input yields byte-identical outputs; and tests need no sleeps.
    now: Timestamp,
    /// Events emitted so far.
    outputs: Vec<Event>,
}

impl<'a> Context<'a> {
    /// A context for handling the event with envelope `input`.
    pub fn new(input: &'a Envelope, worker: &'a str, now: Timestamp) -> Self {
        Self {
            input,
            worker,
            now,
            outputs: Vec::new(),
        }
    }

    /// The time to use as "now": the input record's timestamp, never the wall clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The envelope of the event being handled.
    pub fn input(&self) -> &Envelope {
        self.input
    }

    /// The envelope for an output of type `E`: its id derived from the input's id, `E` and
    /// `discriminator` (use `""` when the input causes at most one `E`, else something that
    /// tells the outputs apart, such as the SKU), the input as its cause, [`Context::now`] as its
    /// time.
    pub fn envelope_for<E: EventType>(&self, discriminator: &str) -> Envelope {
        Envelope::caused_by::<E>(self.input, discriminator, self.worker, self.now)
    }

    /// Like [`Context::envelope_for`], but caused by `cause` rather than the input: for a
    /// timer acting on behalf of several earlier events (kept in the state), so each output
    /// has the id and cause it would have had if handled when its event arrived.
    pub fn envelope_caused_by<E: EventType>(
        &self,
        cause: &Envelope,
        discriminator: &str,
    ) -> Envelope {
        Envelope::caused_by::<E>(cause, discriminator, self.worker, self.now)
    }

    /// Emits an event. It is written to its type's topic, keyed by its key.
    pub fn emit(&mut self, event: impl Into<Event>) {
        self.outputs.push(event.into());
    }

    /// The events emitted so far.
    pub fn outputs(&self) -> &[Event] {
        &self.outputs
    }

    /// Takes the emitted events.
    pub fn into_outputs(self) -> Vec<Event> {
        self.outputs
    }
}
