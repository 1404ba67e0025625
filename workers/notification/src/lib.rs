//! The notification worker of the retail order saga: tells customers what happens to their
//! orders, each message at most once.
//!
//! It reads the four order-keyed topics (`storefront.orders.v1`, `payments.payments.v1`,
//! `fulfilment.orders.v1`, `shipping.shipments.v1`) and sends `ORDER_CONFIRMED` on
//! `OrderPlaced`, `PAYMENT_FAILED` on `PaymentFailed`, `ORDER_CANCELLED` on `OrderCancelled`
//! and `ORDER_SHIPPED` on `ShipmentCreated`, through a pluggable channel (log, file, webhook),
//! reporting each as `NotificationSent` or `NotificationFailed` on
//! `notification.notifications.v1`. See [`handler`] for the rules (waiting for the contact,
//! giving up, duplicates).
//!
//! # Layout
//! - [`handler`]: the [`NotificationHandler`]: which message, when, and what is recorded.
//! - [`state`]: what is kept per order.
//! - [`templates`]: the minijinja templates, built in and overridable.
//! - [`message`]: a rendered message and its deterministic notification id.
//! - [`channel`]: the [`Channel`](channel::Channel) trait and the log, file and webhook
//!   channels.
//! - [`config`]: the worker's flags and environment variables.
//!
//! # Delivery happens once, even across crashes
//! A message is an effect outside Kafka, so the runtime's guarantees (outputs, state change and
//! offset made durable in that order; see `retail_runtime::state`) leave one window: the
//! worker can crash after the channel delivered a message but before the state change that
//! records it is durable. The input is then handled again after the restart, from the old
//! state, and the message is delivered again. That is safe because every delivery is idempotent
//! by the notification id, a UUIDv5 of the order id and the kind, which is the same on every
//! attempt and every replay, and because the rendered message contains nothing time-dependent:
//! - the file channel writes `<notification_id>.json` atomically (temporary file + rename), so
//!   the replay overwrites the same file with the same bytes;
//! - the webhook channel sends the same `Idempotency-Key: <notification_id>` and the same body,
//!   so the receiver drops the repeat;
//! - the log channel logs twice, which is acceptable for a development channel.
//!
//! The customer gets one message. The events are deterministic too: a replayed
//! `NotificationSent` has the same event id (derived from the input's id, its type and the
//! kind) and downstream deduplicates it. One caveat: a delivery's outcome depends on the
//! receiver, so a replay can end differently (the webhook answered 503 three times before the
//! crash and 200 after it); then both a `NotificationFailed` and a `NotificationSent` with the
//! same notification id may appear, and consumers should take the notification id as the
//! identity of a message, the last outcome winning.
//!
//! Once the state change is durable the input is in the runtime's processed ledger and is not
//! handled again, and the settled kind stops later duplicates (a second `ShipmentCreated`, a
//! replayed topic) for as long as the order is remembered: `--order-retention` (30 days by
//! default) after its shipment or cancellation message, after which its state is deleted, so
//! memory follows the orders of that period, not of all time.

pub mod channel;
pub mod config;
pub mod handler;
pub mod message;
pub mod state;
pub mod templates;

pub use config::NotificationArgs;
pub use handler::NotificationHandler;
