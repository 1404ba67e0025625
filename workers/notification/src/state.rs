//! What the notification worker remembers per order (the state stored under the order id).
//!
//! Four things: the customer's contact and the order's details (from `OrderPlaced`, the only
//! event that carries them); each kind of message's outcome (sent, or failed for good: never
//! tried again; or waiting for the channel to come back, with when to try next); the messages
//! waiting for the contact because their event overtook the `OrderPlaced` on another topic,
//! with the deadline after which they give up; and when to forget a finished order.
//!
//! Plain structs, enums and vectors only: the runtime stores the state with postcard, which is
//! not self-describing. The changelog holds states written by earlier versions, so a change
//! must leave their bytes readable: add variants at the end of an enum, never fields to a
//! struct (`handler`'s tests decode a state written before `Outcome::Waiting`).

use retail_events::common::Money;
use retail_events::fulfilment::CancellationReason;
use retail_events::notification::NotificationKind;
use retail_events::payments::PaymentFailureReason;
use retail_events::shipping::{Carrier, ServiceLevel};
use retail_events::storefront::OrderPlaced;
use retail_events::{Envelope, Timestamp};
use serde::{Deserialize, Serialize};

/// Everything the worker keeps for one order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderNotifications {
    /// The contact and order details, once the order's `OrderPlaced` arrived: until then no
    /// message can be addressed.
    pub order: Option<PlacedOrder>,
    /// What became of each kind of message that was handed to the channel, in the order they
    /// were first handed over: sent or failed for good (settled: a settled kind is never
    /// notified again, whatever arrives; this is the at-most-once-ever record), or waiting for
    /// the channel to come back.
    pub outcomes: Vec<KindOutcome>,
    /// Messages waiting for `order`, in arrival order, at most one per kind.
    pub pending: Vec<Pending>,
    /// When the pending messages give up; set by the first of them, cleared when they are
    /// delivered or given up.
    pub deadline: Option<Deadline>,
    /// When the order is forgotten: set once its last message (shipped or cancelled) is
    /// settled, `--order-retention` later. Until then late and replayed events send nothing.
    pub forget: Option<Deadline>,
}

impl OrderNotifications {
    /// Whether `kind` is done for good.
    pub fn is_settled(&self, kind: NotificationKind) -> bool {
        self.outcomes
            .iter()
            .any(|entry| entry.kind == kind && !matches!(entry.outcome, Outcome::Waiting(_)))
    }

    /// Whether a `kind` message is waiting for the contact.
    pub fn is_pending(&self, kind: NotificationKind) -> bool {
        self.pending
            .iter()
            .any(|pending| pending.details.kind() == kind)
    }

    /// Whether a `kind` message is waiting for the channel.
    pub fn is_waiting(&self, kind: NotificationKind) -> bool {
        self.waiting().any(|(entry_kind, _)| entry_kind == kind)
    }

    /// The messages waiting for the channel, in the order they were first handed to it.
    pub fn waiting(&self) -> impl Iterator<Item = (NotificationKind, &Redelivery)> {
        self.outcomes
            .iter()
            .filter_map(|entry| match &entry.outcome {
                Outcome::Waiting(redelivery) => Some((entry.kind, &**redelivery)),
                Outcome::Sent | Outcome::Failed => None,
            })
    }

    /// Whether a message of another kind waits for the channel ahead of `kind` (ahead of any
    /// message not handed to the channel yet): `kind` must then wait behind it.
    pub fn waits_before(&self, kind: NotificationKind) -> bool {
        self.outcomes
            .iter()
            .take_while(|entry| entry.kind != kind)
            .any(|entry| matches!(entry.outcome, Outcome::Waiting(_)))
    }

    /// The earliest next try of the messages waiting for the channel.
    pub fn next_redelivery(&self) -> Option<&Redelivery> {
        self.waiting()
            .map(|(_, redelivery)| redelivery)
            .min_by_key(|redelivery| redelivery.next)
    }

    /// Records `kind`'s outcome: a settled kind stays as it is; a waiting one is replaced in
    /// place, so the waiting messages keep their order.
    pub fn settle(&mut self, kind: NotificationKind, outcome: Outcome) {
        match self.outcomes.iter_mut().find(|entry| entry.kind == kind) {
            Some(entry) if matches!(entry.outcome, Outcome::Waiting(_)) => entry.outcome = outcome,
            Some(_) => {}
            None => self.outcomes.push(KindOutcome { kind, outcome }),
        }
    }
}

/// What became of one kind of message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Delivered (`NotificationSent` emitted).
    Sent,
    /// Given up (`NotificationFailed` emitted): permanent refusal, no contact, a template that
    /// did not render, or the channel down for longer than `--give-up-after`.
    Failed,
    /// The channel failed in a way that may pass (the webhook timed out or answered 5xx
    /// through all its attempts): the message is tried again later. Nothing is emitted yet.
    Waiting(Box<Redelivery>),
}

/// A message waiting for the channel to come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redelivery {
    /// What to send.
    pub details: Details,
    /// The event that called for the message: the outcome event's id derives from it, as if
    /// it had been delivered at once.
    pub cause: Envelope,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the first delivery failed (the handler's clock); `--give-up-after` counts from it.
    pub since: Timestamp,
    /// When to try again.
    pub next: Timestamp,
    /// What the last attempt ran into.
    pub last_error: String,
}

/// One kind's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindOutcome {
    /// Which message.
    pub kind: NotificationKind,
    /// What became of it.
    pub outcome: Outcome,
}

/// The contact and details of an order, from its `OrderPlaced`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    /// The customer's id, copied into the notification events.
    pub customer_id: String,
    /// Where messages go.
    pub email: String,
    /// How messages greet the customer.
    pub full_name: String,
    /// The order total, shown in messages.
    pub total: Money,
    /// The order lines, shown in messages.
    pub lines: Vec<Line>,
}

impl PlacedOrder {
    /// What an `OrderPlaced` tells about the order.
    pub fn from_event(placed: &OrderPlaced) -> Self {
        Self {
            customer_id: placed.customer.customer_id.clone(),
            email: placed.customer.email.clone(),
            full_name: placed.customer.full_name.clone(),
            total: placed.order_total.clone(),
            lines: placed
                .lines
                .iter()
                .map(|line| Line {
                    sku: line.sku.clone(),
                    product_name: line.product_name.clone(),
                    quantity: line.quantity,
                    unit_price: line.unit_price.clone(),
                })
                .collect(),
        }
    }
}

/// One order line, as messages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The SKU.
    pub sku: String,
    /// What the customer saw in the shop.
    pub product_name: String,
    /// Units ordered.
    pub quantity: i32,
    /// Price of one unit.
    pub unit_price: Money,
}

/// What a message needs from the event that caused it, beyond the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Details {
    /// The order was accepted (`OrderPlaced`): the order itself is all it needs.
    OrderConfirmed,
    /// The payment failed (`PaymentFailed`).
    PaymentFailed {
        /// Why, as the payment system classifies it.
        reason: PaymentFailureReason,
        /// The provider's explanation, if any.
        message: Option<String>,
        /// The amount that was not paid.
        amount: Money,
    },
    /// The order was cancelled (`OrderCancelled`).
    OrderCancelled {
        /// Why.
        reason: CancellationReason,
        /// Fulfilment's explanation.
        detail: String,
    },
    /// The order shipped (`ShipmentCreated`).
    OrderShipped {
        /// Who carries it.
        carrier: Carrier,
        /// How fast.
        service_level: ServiceLevel,
        /// For the customer to follow the parcel.
        tracking_number: String,
        /// The shipment's id.
        shipment_id: String,
    },
}

impl Details {
    /// The kind of message these details are for.
    pub fn kind(&self) -> NotificationKind {
        match self {
            Self::OrderConfirmed => NotificationKind::OrderConfirmed,
            Self::PaymentFailed { .. } => NotificationKind::PaymentFailed,
            Self::OrderCancelled { .. } => NotificationKind::OrderCancelled,
            Self::OrderShipped { .. } => NotificationKind::OrderShipped,
        }
    }
}

/// A message waiting for the order's contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The customer id if the causing event carried one (`PaymentFailed` does not), for the
    /// `NotificationFailed` emitted if the contact never comes.
    pub customer_id: Option<String>,
    /// What the message will say.
    pub details: Details,
}

/// When pending messages give up, and on whose behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// The first pending event's time plus the contact timeout.
    pub due: Timestamp,
    /// The first pending event's envelope: the give-up outputs are derived from it, so a
    /// timer that fires again after a crash emits the same events.
    pub cause: Envelope,
}
