//! The topics of the saga: one writer per topic, several event types per topic where the order
//! of one order's events matters (subjects use `TopicRecordNameStrategy`).
//!
//! `schemas/README.md` holds the same table for people; a test keeps the two in step.

/// What a topic's record key is. Keys are plain UTF-8 strings (not Avro), so any consumer can
/// partition, join and compact on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionKey {
    /// The order id: every event of one order lands on one partition, in order.
    OrderId,
    /// The SKU: every stock movement of one SKU lands on one partition, in order.
    Sku,
    /// The customer id: every order of one customer lands on one partition, in order.
    CustomerId,
}

/// The name of the field of every event on a topic that the key is taken from.
impl PartitionKey {
    pub const fn field(self) -> &'static str {
        match self {
            Self::OrderId => "order_id",
            Self::Sku => "sku",
            Self::CustomerId => "customer_id",
        }
    }
}

macro_rules! topics {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, key $key:ident, owner $owner:literal; )*) => {
        /// A topic of the saga's catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Topic {
            $( $(#[$doc])* $variant, )*
        }

        impl Topic {
            /// Every topic of the catalogue.
            pub const ALL: &'static [Topic] = &[$(Topic::$variant),*];

            /// The topic's name on the broker.
            pub const fn name(self) -> &'static str {
                match self { $( Topic::$variant => $name, )* }
            }

            /// What the record key is.
            pub const fn key(self) -> PartitionKey {
                match self { $( Topic::$variant => PartitionKey::$key, )* }
            }

            /// The one service that writes the topic.
            pub const fn owner(self) -> &'static str {
                match self { $( Topic::$variant => $owner, )* }
            }
        }
    };
}

topics! {
    /// Orders confirmed by customers.
    StorefrontOrders = "storefront.orders.v1", key OrderId, owner "storefront";
    /// Answers of the payment system.
    Payments = "payments.payments.v1", key OrderId, owner "payments";
    /// Physical stock changes reported by the warehouse.
    WarehouseStockAdjustments = "warehouse.stock-adjustments.v1", key Sku, owner "warehouse";
    /// Reservations made, refused and released by inventory.
    InventoryReservations = "inventory.reservations.v1", key OrderId, owner "inventory";
    /// Stock-level alerts from inventory.
    InventoryStockLevels = "inventory.stock-levels.v1", key Sku, owner "inventory";
    /// Internal to inventory: hold, release and ship commands, keyed by SKU.
    InventorySkuCommands = "inventory.sku-commands.v1", key Sku, owner "inventory";
    /// Internal to inventory: answers to holds, keyed by order id.
    InventorySkuHolds = "inventory.sku-holds.v1", key OrderId, owner "inventory";
    /// Fraud verdicts.
    FraudChecks = "fraud.checks.v1", key OrderId, owner "fraud";
    /// Internal to fraud: orders keyed by customer id.
    FraudCustomerOrders = "fraud.customer-orders.v1", key CustomerId, owner "fraud";
    /// Fulfilment progress and cancellations.
    FulfilmentOrders = "fulfilment.orders.v1", key OrderId, owner "fulfilment";
    /// Shipments booked.
    ShippingShipments = "shipping.shipments.v1", key OrderId, owner "shipping";
    /// Customer messages sent or failed.
    NotificationNotifications = "notification.notifications.v1", key OrderId, owner "notification";
}

impl Topic {
    /// The topic with this name, if it is in the catalogue.
    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL
            .iter()
            .copied()
            .find(|topic| topic.name() == name)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
