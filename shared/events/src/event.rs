//! The closed set of event types: the [`EventType`] trait every event implements, and the
//! [`Event`] enum a consumer receives. Every event type is listed once, in [`event_types!`] below.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// How to read and write one event type with apache-avro; the codec's dispatch table.
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
    /// Decodes a datum written with exactly the reader's schema, without building a `Value`.
    pub read_direct: fn(&GenericDatumReader<'_>, &mut &[u8]) -> apache_avro::AvroResult<Event>,
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
                    read_direct: |reader, bytes| reader.read_deser::<$module::$variant>(bytes).map(Event::$variant),
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

            /// How this event's type is read and written.
            pub fn descriptor(&self) -> &'static EventDescriptor {
                let kind = match self { $( Event::$variant(_) => EventKind::$variant, )* };
                &EVENT_TYPES[kind as usize]
            }

            /// Serialises the payload with a writer built for this event type's schema.
            pub fn write_avro(
                &self,
                writer: &GenericDatumWriter<'_>,
                out: &mut Vec<u8>,
            ) -> apache_avro::AvroResult<usize> {
                match self { $( Event::$variant(event) => writer.write_ser(out, event), )* }
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
