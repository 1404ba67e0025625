//! The envelope every event carries, and the event ids and timestamps inside it.
//!
//! Effectively-once processing rests on ids: a consumer deduplicates by `event_id`, and a worker
//! that re-processes an input after a crash must emit outputs with the *same* ids as the first
//! time. So ids of reactions are derived (UUIDv5) from the causing event's id, never drawn at
//! random; only events that start a flow outside the saga (an order placed, a payment reported,
//! a restock) get a random id.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::event::EventType;

/// Namespace of the UUIDv5 ids derived by [`EventId::derived`]. Changing it changes every derived
/// id, which would break deduplication across a deploy: never change it.
const DERIVED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d0e_5b7a_4c1e_9a53_0d6e_8f21_b4c7);

/// Identity of one event; Avro `string` with logical type `uuid`.
///
/// Always (de)serialised as the canonical hyphenated text form, whatever the serde format's
/// human-readable flag says (apache-avro's schema-aware serde is not human-readable and would
/// otherwise write `uuid::Uuid` as 16 bytes, which an Avro `uuid` string field does not accept).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

impl EventId {
    /// A fresh random id, for events that start a flow (the storefront's OrderPlaced, the payment
    /// system's answers, the warehouse's adjustments).
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id of an event emitted in reaction to `cause`.
    ///
    /// `event_type` and `discriminator` separate the several outputs one input may cause (an
    /// OrderPlaced can cause a StockReserved and several LowStock, one per SKU: pass the SKU).
    /// The same inputs always give the same id, so a re-processed input re-emits the same ids.
    pub fn derived(cause: EventId, event_type: &str, discriminator: &str) -> Self {
        let mut name = Vec::with_capacity(16 + event_type.len() + discriminator.len() + 2);
        name.extend_from_slice(cause.0.as_bytes());
        name.extend_from_slice(event_type.as_bytes());
        // A separator no type name contains, so ("ab", "c") and ("a", "bc") cannot collide.
        name.push(0);
        name.extend_from_slice(discriminator.as_bytes());
        Self(Uuid::new_v5(&DERIVED_ID_NAMESPACE, &name))
    }

    /// The id with these 128 bits; for fixtures and tests that need fixed ids.
    pub const fn from_u128(bits: u128) -> Self {
        Self(Uuid::from_u128(bits))
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for EventId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0.hyphenated())
    }
}

impl FromStr for EventId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(text).map(Self)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = Uuid::encode_buffer();
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buffer))
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for EventId {
    type Parameters = ();
    type Strategy = proptest::strategy::Map<proptest::num::u128::Any, fn(u128) -> Self>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        use proptest::strategy::Strategy;
        proptest::num::u128::ANY.prop_map(|bits| Self(Uuid::from_u128(bits)))
    }
}

/// A point in time as microseconds since the Unix epoch (UTC); Avro `long` with logical type
/// `timestamp-micros`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// A timestamp from microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The wall clock now. Code with time-dependent logic takes the time as a parameter instead,
    /// so it can be tested without sleeping; only the edges of the system call this.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This time plus `duration` (saturating at the end of representable time).
    pub fn plus(self, duration: std::time::Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// This time minus `duration` (saturating at the start of representable time).
    pub fn minus(self, duration: std::time::Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)),
        )
    }
}

/// Metadata carried by every event (`retail.common.Envelope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Envelope {
    /// Unique id; consumers deduplicate by it.
    pub event_id: EventId,
    /// Simple record name of the event, e.g. `OrderPlaced`.
    pub event_type: String,
    /// When the fact happened.
    pub occurred_at: Timestamp,
    /// The order id for order-scoped events; the stock movement's id for stock events.
    pub correlation_id: String,
    /// Id of the event that caused this one; `None` for events that start a flow.
    pub causation_id: Option<EventId>,
    /// The service that wrote the event.
    pub producer: String,
    /// Revision of the event's schema contract the producer was built against.
    pub schema_version: i32,
}

impl Envelope {
    /// The envelope of an event that starts a flow: a random id and no cause.
    pub fn originating<E: EventType>(
        correlation_id: impl Into<String>,
        producer: impl Into<String>,
        occurred_at: Timestamp,
    ) -> Self {
        Self {
            event_id: EventId::random(),
            event_type: E::NAME.to_owned(),
            occurred_at,
            correlation_id: correlation_id.into(),
            causation_id: None,
            producer: producer.into(),
            schema_version: E::REVISION,
        }
    }

    /// The envelope of an event emitted in reaction to the event enveloped by `cause`.
    ///
    /// The id is derived from the cause (see [`EventId::derived`]), the correlation id is
    /// inherited, and the causation id points at the cause.
    pub fn caused_by<E: EventType>(
        cause: &Envelope,
        discriminator: &str,
        producer: impl Into<String>,
        occurred_at: Timestamp,
    ) -> Self {
        Self {
            event_id: EventId::derived(cause.event_id, E::NAME, discriminator),
            event_type: E::NAME.to_owned(),
            occurred_at,
            correlation_id: cause.correlation_id.clone(),
            causation_id: Some(cause.event_id),
            producer: producer.into(),
            schema_version: E::REVISION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::StockReserved;

    #[test]
    fn derived_ids_are_deterministic_and_separate_types_and_discriminators() {
        let cause = EventId::random();
        let first = EventId::derived(cause, "StockReserved", "");
        assert_eq!(first, EventId::derived(cause, "StockReserved", ""));
        assert_ne!(first, EventId::derived(cause, "StockRejected", ""));
        assert_ne!(
            EventId::derived(cause, "LowStock", "sku-1"),
            EventId::derived(cause, "LowStock", "sku-2")
        );
        assert_ne!(
            EventId::derived(cause, "ab", "c"),
            EventId::derived(cause, "a", "bc")
        );
        assert_ne!(
            first,
            EventId::derived(EventId::random(), "StockReserved", "")
        );
    }

    #[test]
    fn event_id_text_round_trips() {
        let id = EventId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<EventId>().ok(), Some(id));
        assert!("not-a-uuid".parse::<EventId>().is_err());
    }

    #[test]
    fn caused_by_links_the_cause_and_inherits_the_correlation_id() {
        let cause = Envelope {
            event_id: EventId::random(),
            event_type: "OrderPlaced".into(),
            occurred_at: Timestamp::from_micros(1),
            correlation_id: "order-1".into(),
            causation_id: None,
            producer: "storefront".into(),
            schema_version: 1,
        };
        let reaction = Envelope::caused_by::<StockReserved>(
            &cause,
            "",
            "inventory",
            Timestamp::from_micros(2),
        );
        assert_eq!(reaction.causation_id, Some(cause.event_id));
        assert_eq!(reaction.correlation_id, "order-1");
        assert_eq!(reaction.event_type, "StockReserved");
        assert_eq!(
            reaction.event_id,
            EventId::derived(cause.event_id, "StockReserved", "")
        );
        let again = Envelope::caused_by::<StockReserved>(
            &cause,
            "",
            "inventory",
            Timestamp::from_micros(99),
        );
        assert_eq!(again.event_id, reaction.event_id);
    }
}
