//! A customer message ready to deliver, and its deterministic id.
//!
//! The notification id is the message's idempotency key: a UUIDv5 of the order id and the kind,
//! so every attempt, every re-delivery after a crash and every replay of the same notification
//! carries the same id (the file channel's file name, the webhook's `Idempotency-Key`).

use retail_events::notification::NotificationKind;
use serde::Serialize;
use uuid::Uuid;

/// Namespace of notification ids. Changing it changes every id, which would let a replay after
/// a deploy send customers their messages again: never change it.
const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x8b2f_6c1d_3e4a_4f57_9c08_d1e2_a3b4_c5d6);

/// The id of the `kind` message about `order_id`: the same whenever it is computed.
pub fn notification_id(order_id: &str, kind: NotificationKind) -> String {
    let mut name = Vec::with_capacity(order_id.len() + 20);
    name.extend_from_slice(order_id.as_bytes());
    // A separator no order id contains, so ("a", "bc") and ("ab", "c") cannot collide.
    name.push(0);
    name.extend_from_slice(kind_name(kind).as_bytes());
    Uuid::new_v5(&NOTIFICATION_NAMESPACE, &name)
        .hyphenated()
        .to_string()
}

/// The kind's Avro symbol, e.g. `ORDER_SHIPPED`: for ids, event discriminators and logs.
pub fn kind_name(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Unknown => "UNKNOWN",
        NotificationKind::OrderConfirmed => "ORDER_CONFIRMED",
        NotificationKind::PaymentFailed => "PAYMENT_FAILED",
        NotificationKind::OrderCancelled => "ORDER_CANCELLED",
        NotificationKind::OrderShipped => "ORDER_SHIPPED",
    }
}

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The customer's name, for the greeting and the `To:` line.
    pub name: String,
    /// The customer's e-mail address.
    pub email: String,
}

/// A rendered message, as the channels deliver it (and as the file and webhook channels write
/// it, in JSON). Contains nothing time-dependent, so a replay writes the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The idempotency key (see [`notification_id`]).
    pub notification_id: String,
    /// Which message this is.
    pub kind: NotificationKind,
    /// The order it is about.
    pub order_id: String,
    /// The customer it is for.
    pub customer_id: String,
    /// Where it goes.
    pub recipient: Recipient,
    /// The rendered subject line: one line.
    pub subject: String,
    /// The rendered body text.
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_ids_are_one_per_order_and_kind() {
        let id = notification_id("order-1", NotificationKind::OrderShipped);
        assert_eq!(
            id,
            notification_id("order-1", NotificationKind::OrderShipped)
        );
        assert_ne!(
            id,
            notification_id("order-1", NotificationKind::OrderCancelled)
        );
        assert_ne!(
            id,
            notification_id("order-2", NotificationKind::OrderShipped)
        );
        assert_eq!(id.len(), 36);
        assert_eq!(Uuid::parse_str(&id).expect("a uuid").get_version_num(), 5);
    }

    #[test]
    fn messages_serialise_with_the_kind_as_its_avro_symbol() {
        let message = Message {
            notification_id: "n-1".to_owned(),
            kind: NotificationKind::OrderConfirmed,
            order_id: "order-1".to_owned(),
            customer_id: "c-1".to_owned(),
            recipient: Recipient {
                name: "Anna".to_owned(),
                email: "anna@example.com".to_owned(),
            },
            subject: "s".to_owned(),
            body: "b".to_owned(),
        };
        let json = serde_json::to_value(&message).expect("serialisable");
        assert_eq!(json["kind"], "ORDER_CONFIRMED");
        assert_eq!(json["recipient"]["email"], "anna@example.com");
    }
}
