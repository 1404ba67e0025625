//! The closed set of event types: the [`EventType`] trait every event implements, and the
//! [`Event`] enum a consumer receives. Every event type is listed once, in [`event_types!`] below.

use apache_avro::types::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_avro_fast::de::{DeError, DeserializerConfig, DeserializerState, read::ReaderRead};
use serde_avro_fast::ser::{SerError, SerializerConfig};

use crate::topics::Topic;
use crate::{
    Envelope, fraud, fulfilment, inventory, notification, payments, shipping, storefront, warehouse,
};

/// What every event type knows about itself.
pub trait EventType:
    Serialize
    + DeserializeOwned
    + Clone
    + PartialEq
    + std::fmt::Debug
    + Send
    + Sync
    + Into<Event>
    + 'static
{
    /// Simple record name, e.g. `OrderPlaced`; also `Envelope::event_type`.
    const NAME: &'static str;
    /// Avro full name, e.g. `retail.storefront.OrderPlaced`.
    const FULL_NAME: &'static str;
    /// Revision of the schema contract (the `revision` attribute of its `.avsc`).
    const REVISION: i32;
    /// The one topic this event type is written to.
    const TOPIC: Topic;

    /// The envelope.
    fn envelope(&self) -> &Envelope;

    /// The record key: the order id, the SKU or the customer id, as [`Topic::key`] says.
    fn key(&self) -> &str;
}

/// Most items one array of a decoded datum may have. Every item of this catalogue's arrays takes
/// at least one byte, so a body of a Kafka record cannot hold more; the bound stops a hostile
/// count from looping over items that take no bytes.
pub const MAX_DATUM_SEQUENCE: usize = 1 << 20;

/// How to read and write one event type; the codec's dispatch table.
#[derive(Debug)]
pub struct EventDescriptor {
    /// Position in [`EVENT_TYPES`], for tables indexed by event type.
    pub index: usize,
    /// Simple record name.
    pub name: &'static str,
    /// Avro full name.
    pub full_name: &'static str,
    /// Schema revision.
    pub revision: i32,
    /// The topic it is written to.
    pub topic: Topic,
    /// Decodes a datum written with exactly this type's schema (`schema`, its
    /// [`EventSchema::datum`](crate::EventSchema::datum)) straight into the type, advancing
    /// `bytes` past it. A length prefix longer than what is left of `bytes` fails without
    /// allocating.
    pub read_datum: fn(&mut &[u8], &serde_avro_fast::Schema) -> Result<Event, DeError>,
    /// Converts a `Value` already resolved to the reader's schema.
    pub from_value: fn(&Value) -> apache_avro::AvroResult<Event>,
}

/// Descriptors are equal when they describe the same event type.
impl PartialEq for EventDescriptor {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}

impl Eq for EventDescriptor {}

impl EventDescriptor {
    /// The Schema Registry subject of this event type: `TopicRecordNameStrategy`,
    /// `<topic>-<record full name>`.
    pub fn subject(&self) -> String {
        format!("{}-{}", self.topic.name(), self.full_name)
    }
}

macro_rules! event_types {
    ($( $variant:ident in $module:ident, revision $revision:literal, topic $topic:ident, key $key:ident; )*) => {
        /// Any event of the catalogue.
        #[derive(Debug, Clone, PartialEq)]
        #[expect(
            clippy::large_enum_variant,
            reason = "an event is decoded once and then handled in place; boxing the large \
                      variants would cost an allocation per event to save a few hundred bytes of move"
        )]
        pub enum Event {
            $( $variant($module::$variant), )*
        }

        /// Positions in [`EVENT_TYPES`], which lists the types in the same order.
        #[derive(Clone, Copy)]
        enum EventKind {
            $( $variant, )*
        }

        $(
            impl EventType for $module::$variant {
                const NAME: &'static str = stringify!($variant);
                const FULL_NAME: &'static str = concat!("retail.", stringify!($module), ".", stringify!($variant));
                const REVISION: i32 = $revision;
                const TOPIC: Topic = Topic::$topic;

                fn envelope(&self) -> &Envelope {
                    &self.envelope
                }

                fn key(&self) -> &str {
                    &self.$key
                }
            }

            impl From<$module::$variant> for Event {
                fn from(event: $module::$variant) -> Self {
                    Event::$variant(event)
                }
            }
        )*

        /// Every event type, in catalogue order.
        pub static EVENT_TYPES: &[EventDescriptor] = &[
            $(
                EventDescriptor {
                    index: EventKind::$variant as usize,
                    name: <$module::$variant as EventType>::NAME,
                    full_name: <$module::$variant as EventType>::FULL_NAME,
                    revision: $revision,
                    topic: Topic::$topic,
                    read_datum: |bytes, schema| read_datum::<$module::$variant>(bytes, schema).map(Event::$variant),
                    from_value: |value| apache_avro::from_value::<$module::$variant>(value).map(Event::$variant),
                },
            )*
        ];

        /// Any event of any type, for property tests.
        #[cfg(any(test, feature = "proptest"))]
        pub fn arbitrary_event() -> proptest::strategy::BoxedStrategy<Event> {
            use proptest::strategy::Strategy;
            proptest::prop_oneof![
                $( proptest::arbitrary::any::<$module::$variant>().prop_map(Event::$variant), )*
            ]
            .boxed()
        }

        impl Event {
            /// The envelope.
            pub fn envelope(&self) -> &Envelope {
                match self { $( Event::$variant(event) => &event.envelope, )* }
            }

            /// The record key (order id, SKU or customer id).
            pub fn key(&self) -> &str {
                match self { $( Event::$variant(event) => event.key(), )* }
            }

            /// The key and the type's rules ([`crate::validate`]); the broken one, described.
            pub(crate) fn checked(&self) -> Result<(), String> {
                match self { $( Event::$variant(event) => crate::validate::keyed(event), )* }
            }

            /// How this event's type is read and written.
            pub fn descriptor(&self) -> &'static EventDescriptor {
                let kind = match self { $( Event::$variant(_) => EventKind::$variant, )* };
                &EVENT_TYPES[kind as usize]
            }

            /// Appends the Avro datum of the payload, written with this event type's schema
            /// (`schema`, its [`EventSchema::datum`](crate::EventSchema::datum)), to `out`.
            pub fn write_datum(
                &self,
                schema: &serde_avro_fast::Schema,
                out: &mut Vec<u8>,
            ) -> Result<(), SerError> {
                let config = &mut SerializerConfig::new(schema);
                match self {
                    $( Event::$variant(event) => serde_avro_fast::to_datum(event, out, config).map(drop), )*
                }
            }
        }
    };
}

event_types! {
    OrderPlaced in storefront, revision 1, topic StorefrontOrders, key order_id;
    PaymentAuthorized in payments, revision 1, topic Payments, key order_id;
    PaymentFailed in payments, revision 1, topic Payments, key order_id;
    StockAdjusted in warehouse, revision 1, topic WarehouseStockAdjustments, key sku;
    StockReserved in inventory, revision 1, topic InventoryReservations, key order_id;
    StockRejected in inventory, revision 1, topic InventoryReservations, key order_id;
    StockReleased in inventory, revision 1, topic InventoryReservations, key order_id;
    LowStock in inventory, revision 1, topic InventoryStockLevels, key sku;
    SkuCommand in inventory, revision 1, topic InventorySkuCommands, key sku;
    SkuHoldAnswered in inventory, revision 1, topic InventorySkuHolds, key order_id;
    FraudCheckRequested in fraud, revision 1, topic FraudCustomerOrders, key customer_id;
    FraudCleared in fraud, revision 1, topic FraudChecks, key order_id;
    FraudFlagged in fraud, revision 1, topic FraudChecks, key order_id;
    FulfilmentStarted in fulfilment, revision 1, topic FulfilmentOrders, key order_id;
    OrderPacked in fulfilment, revision 1, topic FulfilmentOrders, key order_id;
    OrderCancelled in fulfilment, revision 1, topic FulfilmentOrders, key order_id;
    ShipmentCreated in shipping, revision 1, topic ShippingShipments, key order_id;
    NotificationSent in notification, revision 1, topic NotificationNotifications, key order_id;
    NotificationFailed in notification, revision 1, topic NotificationNotifications, key order_id;
}

/// Reads one datum of `T` from the front of `bytes`. The reader is the whole remaining slice,
/// so a string or array length beyond it fails on the spot: the fallback buffer a streaming
/// reader would grow is capped at zero bytes.
fn read_datum<T: DeserializeOwned>(
    bytes: &mut &[u8],
    schema: &serde_avro_fast::Schema,
) -> Result<T, DeError> {
    let mut reader = ReaderRead::new(bytes);
    reader.max_alloc_size = 0;
    let mut config = DeserializerConfig::new(schema);
    config.max_seq_size = MAX_DATUM_SEQUENCE;
    let mut state = DeserializerState::with_config(reader, config);
    T::deserialize(state.deserializer())
}

impl Event {
    /// Simple record name, e.g. `OrderPlaced`.
    pub fn name(&self) -> &'static str {
        self.descriptor().name
    }

    /// The topic this event is written to.
    pub fn topic(&self) -> Topic {
        self.descriptor().topic
    }
}
