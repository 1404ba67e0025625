//! The notification handler: decides which customer message each event calls for, renders it,
//! hands it to the channel, and records the outcome so it is never sent twice.
//!
//! State is kept per order (every input is keyed by order id):
//! - `OrderPlaced` brings the contact; it is answered with `ORDER_CONFIRMED`, then every
//!   message that was waiting for the contact is delivered, in arrival order.
//! - `PaymentFailed`, `OrderCancelled`, `ShipmentCreated` call for `PAYMENT_FAILED`,
//!   `ORDER_CANCELLED`, `ORDER_SHIPPED`. Without a contact yet (their topic overtook the
//!   storefront's), the message waits in the state; the first waiting message sets a deadline
//!   (`--contact-timeout` later) after which every waiting message is given up with a
//!   `NotificationFailed` saying the contact is unknown: nothing waits forever.
//! - A kind that is settled (sent, or failed for good) or already waiting is never handled
//!   again: duplicates and replays send nothing.
//!
//! When the channel fails in a way that may pass (the webhook timed out, refused the
//! connection or answered 5xx through all its attempts), the message waits in the state for
//! the channel to come back, and a timer tries it again every `--redelivery-interval`. The
//! partition is not held up: the input is done, and the next orders are handled. Meanwhile the
//! channel counts as down, so new messages wait without trying it (one delivery's attempts per
//! interval, not one per message), and an order's later messages wait behind its earlier
//! ones, so each customer gets them in order. A message still undelivered `--give-up-after`
//! its first failure is given up.
//!
//! Every delivery ends in exactly one event: `NotificationSent`, or `NotificationFailed` with
//! the attempts made and the reason. The events' ids derive from the id of the event that
//! called for the message and the kind, also when it is delivered later by the timer.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use retail_events::notification::{NotificationFailed, NotificationKind, NotificationSent};
use retail_events::storefront::OrderPlaced;
use retail_events::{Envelope, Event, Timestamp, Topic};
use retail_runtime::{Context, Handler, HandlerError, Timer};

use retail_events::notification::NotificationChannel;
use retail_runtime::telemetry::{GAUGE, HISTOGRAM, MetricInfo};

use crate::channel::Channel;
use crate::message::{Message, Recipient, kind_name, notification_id};
use crate::state::{
    Deadline, Details, OrderNotifications, Outcome, Pending, PlacedOrder, Redelivery,
};
use crate::templates::{Templates, View};

/// Time one delivery took through the channel, retries included, by channel and outcome.
const DELIVERY_DURATION: &str = "notification_delivery_duration_seconds";
/// Whether the channel delivered the last message it was given (1) or is down (0).
const CHANNEL_UP: &str = "notification_channel_up";

/// The notification worker's own metrics, beside the runtime's.
pub const METRICS: &[MetricInfo] = &[
    MetricInfo {
        name: DELIVERY_DURATION,
        kind: HISTOGRAM,
        labels: &["channel", "outcome"],
        description: "Time one message took to deliver through its channel (webhook attempts and back-off included), by channel (log, file, webhook) and outcome: sent, failed (given up for good), or deferred (every attempt failed in a way that may pass; the message waits for redelivery).",
    },
    MetricInfo {
        name: CHANNEL_UP,
        kind: GAUGE,
        labels: &["channel"],
        description: "1 while the channel delivers, 0 once a delivery's every attempt failed in a way that may pass (timeouts, refused connections, 5xx) until one goes through again. While 0, messages wait in the state for redelivery (worker_open_items counts their orders) and are given up after --give-up-after.",
    },
];

/// The `channel` label: the Avro enum symbol in lower case.
fn channel_label(channel: NotificationChannel) -> &'static str {
    match channel {
        NotificationChannel::Unknown => "unknown",
        NotificationChannel::Log => "log",
        NotificationChannel::File => "file",
        NotificationChannel::Webhook => "webhook",
    }
}

/// The notification handler.
#[derive(Debug)]
pub struct NotificationHandler {
    /// One template per kind of message.
    templates: Templates,
    /// Where messages go.
    channel: Box<dyn Channel>,
    /// How long messages wait for the order's contact before they are given up.
    contact_timeout: Duration,
    /// How long an order is remembered once its last message is settled.
    retention: Duration,
    /// How long a message the channel could not deliver waits before the next try, and how
    /// long the channel counts as down after such a failure.
    redelivery_interval: Duration,
    /// How long after its first failure a message is still tried again.
    give_up_after: Duration,
    /// Until when the channel counts as down: new messages wait without trying it.
    channel_down_until: Mutex<Option<Timestamp>>,
    /// The wall clock, which paces redelivery (tests stop it at 0, leaving the handler's clock).
    wall_clock: fn() -> Timestamp,
}

/// Why a message was not delivered: the channel gave up, or it never got that far (no usable
/// address, a template that does not render). Reported as `NotificationFailed`.
struct NotDelivered {
    /// Delivery attempts made; 0 when nothing was sent.
    attempts: u32,
    /// The reason, for `NotificationFailed.error`.
    error: String,
}

/// How long a finished order is remembered unless configured otherwise.
const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Redelivery pace unless configured otherwise.
const DEFAULT_REDELIVERY_INTERVAL: Duration = Duration::from_secs(30);
/// How long messages are tried again unless configured otherwise.
const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

impl NotificationHandler {
    /// A handler rendering with `templates`, delivering through `channel`, and giving up on a
    /// contact that has not arrived after `contact_timeout`.
    pub fn new(templates: Templates, channel: Box<dyn Channel>, contact_timeout: Duration) -> Self {
        Self {
            templates,
            channel,
            contact_timeout,
            retention: DEFAULT_RETENTION,
            redelivery_interval: DEFAULT_REDELIVERY_INTERVAL,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            channel_down_until: Mutex::new(None),
            wall_clock: Timestamp::now,
        }
    }

    /// The same handler remembering a finished order for `retention` (default 30 days): the
    /// state of an order is deleted that long after its shipment or cancellation message is
    /// settled, so memory follows the orders of the period, not of all time.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The same handler trying a message the channel could not deliver again every
    /// `interval` (default 30 s), and giving it up `give_up_after` (default 24 h) after its
    /// first failure.
    #[must_use]
    pub fn with_redelivery(mut self, interval: Duration, give_up_after: Duration) -> Self {
        self.redelivery_interval = interval;
        self.give_up_after = give_up_after;
        self
    }

    /// The time redelivery is paced by: the wall clock, or the handler's clock when that is
    /// later. Timers fire on the wall clock, and a backlog's inputs carry old timestamps: a
    /// next try computed from those would be due at once, over and over.
    fn pace_clock(&self, context: &Context<'_>) -> Timestamp {
        context.now().max((self.wall_clock)())
    }

    /// Whether the channel counts as down at `now`.
    fn channel_down(&self, now: Timestamp) -> bool {
        self.channel_down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| until > now)
    }

    /// Records whether the channel just delivered; down, it counts as down until `until`.
    fn set_channel(&self, down_until: Option<Timestamp>) {
        *self
            .channel_down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = down_until;
        metrics::gauge!(CHANNEL_UP, "channel" => channel_label(self.channel.kind()))
            .set(if down_until.is_some() { 0.0 } else { 1.0 });
    }

    /// Starts the retention period once the order's last message is settled.
    fn schedule_forget(&self, notifications: &mut OrderNotifications, context: &Context<'_>) {
        let finished = notifications.is_settled(NotificationKind::OrderShipped)
            || notifications.is_settled(NotificationKind::OrderCancelled);
        if finished && notifications.forget.is_none() {
            notifications.forget = Some(Deadline {
                due: context.now().plus(self.retention),
                cause: context.input().clone(),
            });
        }
    }

    /// `OrderPlaced`: remember the contact, confirm the order, deliver what was waiting.
    fn on_order_placed(
        &self,
        placed: &OrderPlaced,
        notifications: &mut OrderNotifications,
        context: &mut Context<'_>,
    ) {
        if notifications.order.is_some() {
            tracing::debug!(order_id = %placed.order_id, "order already known; duplicate OrderPlaced ignored");
            return;
        }
        let order = PlacedOrder::from_event(placed);
        notifications.order = Some(order.clone());
        notifications.deadline = None;
        let waiting = std::mem::take(&mut notifications.pending);
        let cause = context.input().clone();
        for details in std::iter::once(Details::OrderConfirmed)
            .chain(waiting.into_iter().map(|pending| pending.details))
        {
            self.notify(
                &placed.order_id,
                &order,
                &details,
                &cause,
                None,
                notifications,
                context,
            );
        }
    }

    /// An event that calls for a message other than the confirmation.
    fn on_notifiable(
        &self,
        order_id: &str,
        customer_id: Option<&str>,
        details: Details,
        notifications: &mut OrderNotifications,
        context: &mut Context<'_>,
    ) {
        let kind = details.kind();
        if notifications.is_settled(kind)
            || notifications.is_pending(kind)
            || notifications.is_waiting(kind)
        {
            tracing::debug!(
                order_id,
                kind = kind_name(kind),
                "already notified or waiting; ignored"
            );
            return;
        }
        if let Some(order) = notifications.order.clone() {
            let cause = context.input().clone();
            self.notify(
                order_id,
                &order,
                &details,
                &cause,
                None,
                notifications,
                context,
            );
            return;
        }
        tracing::debug!(
            order_id,
            kind = kind_name(kind),
            "contact unknown yet; message waits"
        );
        notifications.pending.push(Pending {
            customer_id: customer_id.map(str::to_owned),
            details,
        });
        if notifications.deadline.is_none() {
            let timeout = i64::try_from(self.contact_timeout.as_micros()).unwrap_or(i64::MAX);
            notifications.deadline = Some(Deadline {
                due: Timestamp::from_micros(context.now().as_micros().saturating_add(timeout)),
                cause: context.input().clone(),
            });
        }
    }

    /// Renders and delivers one message, emits the outcome, and records it; or, when the
    /// channel is down or fails in a way that may pass, leaves the message waiting for
    /// redelivery. `cause` is the event that called for the message; `earlier` what previous
    /// tries of it ran into.
    #[expect(
        clippy::too_many_arguments,
        reason = "the message's parts, the order's state and the context, all needed"
    )]
    fn notify(
        &self,
        order_id: &str,
        order: &PlacedOrder,
        details: &Details,
        cause: &Envelope,
        earlier: Option<&Redelivery>,
        notifications: &mut OrderNotifications,
        context: &mut Context<'_>,
    ) {
        let kind = details.kind();
        if notifications.is_settled(kind) {
            return;
        }
        let id = notification_id(order_id, kind);
        let message = match self.message(order_id, &id, order, details) {
            Ok(message) => message,
            Err(failure) => {
                let failure = NotDelivered {
                    attempts: earlier.map_or(0, |earlier| earlier.attempts),
                    ..failure
                };
                self.fail(
                    order_id,
                    &order.customer_id,
                    kind,
                    cause,
                    failure,
                    notifications,
                    context,
                );
                return;
            }
        };
        let attempts_before = earlier.map_or(0, |earlier| earlier.attempts);
        let since = earlier.map_or(context.now(), |earlier| earlier.since);
        let pace = self.pace_clock(context);
        let waiting_behind = notifications.waits_before(kind);
        if waiting_behind || self.channel_down(pace) {
            let reason = if waiting_behind {
                "waiting behind the order's earlier message"
            } else {
                "not tried: the channel is down"
            };
            let last_error = earlier.map_or_else(|| reason.to_owned(), |e| e.last_error.clone());
            self.wait_or_give_up(
                order_id,
                &order.customer_id,
                Redelivery {
                    details: details.clone(),
                    cause: cause.clone(),
                    attempts: attempts_before,
                    since,
                    next: pace.plus(self.redelivery_interval),
                    last_error,
                },
                notifications,
                context,
            );
            return;
        }
        let started = std::time::Instant::now();
        let delivery = self.channel.deliver(&message);
        let attempts = attempts_before.saturating_add(delivery.attempts);
        let outcome = match &delivery.result {
            Ok(()) => "sent",
            Err(error) if error.may_pass() => "deferred",
            Err(_) => "failed",
        };
        metrics::histogram!(
            DELIVERY_DURATION,
            "channel" => channel_label(self.channel.kind()),
            "outcome" => outcome,
        )
        .record(started.elapsed().as_secs_f64());
        match delivery.result {
            Ok(()) => {
                self.set_channel(None);
                tracing::info!(order_id, kind = kind_name(kind), notification_id = %id, attempts, "notification sent");
                context.emit(NotificationSent {
                    envelope: context
                        .envelope_caused_by::<NotificationSent>(cause, kind_name(kind)),
                    order_id: order_id.to_owned(),
                    customer_id: order.customer_id.clone(),
                    notification_id: id,
                    kind,
                    channel: self.channel.kind(),
                    attempts: count(attempts),
                });
                notifications.settle(kind, Outcome::Sent);
            }
            Err(error) if error.may_pass() => {
                let down_until = self.pace_clock(context).plus(self.redelivery_interval);
                self.set_channel(Some(down_until));
                tracing::warn!(order_id, kind = kind_name(kind), notification_id = %id, attempts, %error, retry_in = %humantime::format_duration(self.redelivery_interval), "notification not delivered; the channel looks down, the message waits");
                self.wait_or_give_up(
                    order_id,
                    &order.customer_id,
                    Redelivery {
                        details: details.clone(),
                        cause: cause.clone(),
                        attempts,
                        since,
                        next: down_until,
                        last_error: error.to_string(),
                    },
                    notifications,
                    context,
                );
            }
            Err(error) => {
                self.fail(
                    order_id,
                    &order.customer_id,
                    kind,
                    cause,
                    NotDelivered {
                        attempts,
                        error: error.to_string(),
                    },
                    notifications,
                    context,
                );
            }
        }
    }

    /// Leaves a message waiting for redelivery, unless it has been failing for
    /// `--give-up-after`: then it is given up.
    fn wait_or_give_up(
        &self,
        order_id: &str,
        customer_id: &str,
        redelivery: Redelivery,
        notifications: &mut OrderNotifications,
        context: &mut Context<'_>,
    ) {
        let kind = redelivery.details.kind();
        if redelivery.since.plus(self.give_up_after) <= context.now() {
            let error = format!(
                "gave up after {} of redelivery and {} attempts; the last: {}",
                humantime::format_duration(self.give_up_after),
                redelivery.attempts,
                redelivery.last_error
            );
            self.fail(
                order_id,
                customer_id,
                kind,
                &redelivery.cause,
                NotDelivered {
                    attempts: redelivery.attempts,
                    error,
                },
                notifications,
                context,
            );
            return;
        }
        notifications.settle(kind, Outcome::Waiting(Box::new(redelivery)));
    }

    /// The rendered message, or why there is none to send.
    fn message(
        &self,
        order_id: &str,
        id: &str,
        order: &PlacedOrder,
        details: &Details,
    ) -> Result<Message, NotDelivered> {
        if !order.email.contains('@') {
            return Err(NotDelivered {
                attempts: 0,
                error: "the customer has no usable e-mail address".to_owned(),
            });
        }
        let rendered = self
            .templates
            .render(&View::new(order_id, id, order, details))
            .map_err(|error| NotDelivered {
                attempts: 0,
                error: format!("the message does not render: {error}"),
            })?;
        Ok(Message {
            notification_id: id.to_owned(),
            kind: details.kind(),
            order_id: order_id.to_owned(),
            customer_id: order.customer_id.clone(),
            recipient: Recipient {
                name: order.full_name.clone(),
                email: order.email.clone(),
            },
            subject: rendered.subject,
            body: rendered.body,
        })
    }

    /// Emits `NotificationFailed` for `kind` and settles it: it is not tried again.
    #[expect(
        clippy::too_many_arguments,
        reason = "the failure's parts, the order's state and the context, all needed"
    )]
    fn fail(
        &self,
        order_id: &str,
        customer_id: &str,
        kind: NotificationKind,
        cause: &Envelope,
        failure: NotDelivered,
        notifications: &mut OrderNotifications,
        context: &mut Context<'_>,
    ) {
        let id = notification_id(order_id, kind);
        tracing::warn!(order_id, kind = kind_name(kind), notification_id = %id, attempts = failure.attempts, error = %failure.error, "notification failed");
        context.emit(NotificationFailed {
            envelope: context.envelope_caused_by::<NotificationFailed>(cause, kind_name(kind)),
            order_id: order_id.to_owned(),
            customer_id: customer_id.to_owned(),
            notification_id: id,
            kind,
            channel: self.channel.kind(),
            attempts: count(failure.attempts),
            error: failure.error,
        });
        notifications.settle(kind, Outcome::Failed);
    }

    /// The contact did not come in time: every message waiting for it is given up.
    fn give_up_pending(
        &self,
        key: &str,
        notifications: &mut OrderNotifications,
        context: &mut Context<'_>,
    ) {
        notifications.deadline = None;
        let waiting = std::mem::take(&mut notifications.pending);
        let cause = context.input().clone();
        if let Some(order) = notifications.order.clone() {
            // Not reachable (the contact's arrival delivers and clears the waiting messages),
            // but if it were, delivering beats giving up.
            for pending in waiting {
                self.notify(
                    key,
                    &order,
                    &pending.details,
                    &cause,
                    None,
                    notifications,
                    context,
                );
            }
            return;
        }
        let error = format!(
            "the customer's contact is unknown: no OrderPlaced for order {key} arrived within {}",
            humantime::format_duration(self.contact_timeout)
        );
        for pending in waiting {
            self.fail(
                key,
                pending.customer_id.as_deref().unwrap_or_default(),
                pending.details.kind(),
                &cause,
                NotDelivered {
                    attempts: 0,
                    error: error.clone(),
                },
                notifications,
                context,
            );
        }
    }

    /// Tries the messages waiting for the channel again, in order, until one still cannot go.
    fn redeliver(
        &self,
        key: &str,
        notifications: &mut OrderNotifications,
        context: &mut Context<'_>,
    ) {
        let waiting: Vec<(NotificationKind, Redelivery)> = notifications
            .waiting()
            .map(|(kind, redelivery)| (kind, redelivery.clone()))
            .collect();
        let Some(order) = notifications.order.clone() else {
            // Not reachable: a message only waits for the channel once it has an address.
            return;
        };
        for (kind, redelivery) in waiting {
            self.notify(
                key,
                &order,
                &redelivery.details,
                &redelivery.cause,
                Some(&redelivery),
                notifications,
                context,
            );
            if notifications.is_waiting(kind) {
                // The rest keep waiting behind it; their next try follows its.
                break;
            }
        }
        self.schedule_forget(notifications, context);
    }
}

/// Attempts as the events' `int`.
fn count(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

impl Handler for NotificationHandler {
    type State = OrderNotifications;
    const STORE: Option<&'static str> = Some("notifications");

    fn inputs(&self) -> Vec<Topic> {
        vec![
            Topic::StorefrontOrders,
            Topic::Payments,
            Topic::FulfilmentOrders,
            Topic::ShippingShipments,
        ]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::NotificationNotifications]
    }

    fn handle(
        &self,
        event: &Event,
        state: &mut Option<OrderNotifications>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let (order_id, customer_id, details) = match event {
            Event::OrderPlaced(placed) => {
                let notifications = state.get_or_insert_with(OrderNotifications::default);
                self.on_order_placed(placed, notifications, context);
                self.schedule_forget(notifications, context);
                return Ok(());
            }
            Event::PaymentFailed(failed) => (
                &failed.order_id,
                None,
                Details::PaymentFailed {
                    reason: failed.reason,
                    message: failed.message.clone(),
                    amount: failed.amount.clone(),
                },
            ),
            Event::OrderCancelled(cancelled) => (
                &cancelled.order_id,
                Some(cancelled.customer_id.as_str()),
                Details::OrderCancelled {
                    reason: cancelled.reason,
                    detail: cancelled.detail.clone(),
                },
            ),
            Event::ShipmentCreated(shipment) => (
                &shipment.order_id,
                Some(shipment.customer_id.as_str()),
                Details::OrderShipped {
                    carrier: shipment.carrier,
                    service_level: shipment.service_level,
                    tracking_number: shipment.tracking_number.clone(),
                    shipment_id: shipment.shipment_id.clone(),
                },
            ),
            _ => return Ok(()),
        };
        let notifications = state.get_or_insert_with(OrderNotifications::default);
        self.on_notifiable(order_id, customer_id, details, notifications, context);
        self.schedule_forget(notifications, context);
        Ok(())
    }

    fn metrics(&self) -> &'static [MetricInfo] {
        METRICS
    }

    /// Open while messages wait for the order's contact or for the channel: since the first of
    /// them began waiting.
    fn open_since(&self, state: &OrderNotifications) -> Option<Timestamp> {
        let for_contact = state
            .deadline
            .as_ref()
            .filter(|_| !state.pending.is_empty())
            .map(|deadline| deadline.due.minus(self.contact_timeout));
        let for_channel = state
            .waiting()
            .map(|(_, redelivery)| redelivery.since)
            .min();
        for_contact.into_iter().chain(for_channel).min()
    }

    /// The earliest of: the contact's deadline, the next redelivery, forgetting the order
    /// (only once nothing waits any more).
    fn timer(&self, state: &OrderNotifications) -> Option<Timer> {
        let contact = state.deadline.as_ref().map(|deadline| Timer {
            due: deadline.due,
            cause: deadline.cause.clone(),
        });
        let redelivery = state.next_redelivery().map(|redelivery| Timer {
            due: redelivery.next,
            cause: redelivery.cause.clone(),
        });
        let forget = state
            .forget
            .as_ref()
            .filter(|_| state.deadline.is_none() && state.next_redelivery().is_none())
            .map(|deadline| Timer {
                due: deadline.due,
                cause: deadline.cause.clone(),
            });
        [contact, redelivery, forget]
            .into_iter()
            .flatten()
            .min_by_key(|timer| timer.due)
    }

    /// Whatever is due: messages waiting for a contact that did not come are given up,
    /// messages waiting for the channel are tried again, a finished order is forgotten.
    fn on_timer(
        &self,
        key: &str,
        state: &mut Option<OrderNotifications>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let Some(notifications) = state.as_mut() else {
            return Ok(());
        };
        let now = context.now();
        if notifications
            .deadline
            .as_ref()
            .is_some_and(|deadline| deadline.due <= now)
        {
            self.give_up_pending(key, notifications, context);
        }
        if notifications
            .next_redelivery()
            .is_some_and(|redelivery| redelivery.next <= now)
        {
            self.redeliver(key, notifications, context);
        }
        self.schedule_forget(notifications, context);
        let forget_due = notifications
            .forget
            .as_ref()
            .is_some_and(|forget| forget.due <= now);
        if forget_due
            && notifications.deadline.is_none()
            && notifications.next_redelivery().is_none()
        {
            // The retention of a finished order is over.
            *state = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use retail_events::common::{Address, Customer, DeliverySpeed, Money, StockLine};
    use retail_events::fulfilment::{CancellationReason, FulfilmentStarted, OrderCancelled};
    use retail_events::notification::NotificationChannel;
    use retail_events::payments::{
        PaymentAuthorized, PaymentFailed, PaymentFailureReason, PaymentMethod,
    };
    use retail_events::shipping::{
        Carrier, LabelFormat, ServiceLevel, ShipmentCreated, ShippingLabel,
    };
    use retail_events::storefront::OrderLine;
    use retail_events::{Envelope, EventId, EventType};

    use super::*;
    use crate::channel::fake::FakeChannel;
    use crate::state::{KindOutcome, Redelivery};

    const ORDER: &str = "order-1";
    const START: i64 = 1_700_000_000_000_000;
    const TEN_MINUTES: Duration = Duration::from_secs(600);
    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn handler() -> (NotificationHandler, FakeChannel) {
        let channel = FakeChannel::default();
        let mut handler = NotificationHandler::new(
            Templates::builtin().expect("built-in templates"),
            Box::new(channel.clone()),
            TEN_MINUTES,
        )
        .with_redelivery(MINUTE, HOUR);
        // The wall clock stopped at 0: redelivery is paced by the inputs' times alone.
        handler.wall_clock = || Timestamp::from_micros(0);
        (handler, channel)
    }

    /// An envelope with an id of its own (`id`), so inputs are told apart.
    fn envelope<E: EventType>(id: u128) -> Envelope {
        Envelope {
            event_id: EventId::from_u128(id),
            event_type: E::NAME.to_owned(),
            occurred_at: Timestamp::from_micros(START),
            correlation_id: ORDER.to_owned(),
            causation_id: None,
            producer: "test".to_owned(),
            schema_version: E::REVISION,
        }
    }

    fn money(amount_minor: i64) -> Money {
        Money {
            amount_minor,
            currency: "SEK".to_owned(),
        }
    }

    fn placed(id: u128) -> Event {
        let address = Address {
            recipient_name: "Anna Andersson".to_owned(),
            line1: "Storgatan 1".to_owned(),
            line2: None,
            city: "Stockholm".to_owned(),
            postal_code: "111 22".to_owned(),
            region: None,
            country_code: "SE".to_owned(),
        };
        Event::OrderPlaced(OrderPlaced {
            envelope: envelope::<OrderPlaced>(id),
            order_id: ORDER.to_owned(),
            customer: Customer {
                customer_id: "customer-1".to_owned(),
                email: "anna@example.com".to_owned(),
                full_name: "Anna Andersson".to_owned(),
                customer_since: Timestamp::from_micros(0),
            },
            lines: vec![OrderLine {
                line_number: 1,
                sku: "SKU-1".to_owned(),
                product_name: "Rain jacket".to_owned(),
                quantity: 2,
                unit_price: money(29_900),
                unit_weight_grams: 800,
            }],
            order_total: money(59_800),
            shipping_address: address.clone(),
            billing_address: address,
            delivery_speed: DeliverySpeed::Standard,
        })
    }

    fn payment_failed(id: u128) -> Event {
        Event::PaymentFailed(PaymentFailed {
            envelope: envelope::<PaymentFailed>(id),
            order_id: ORDER.to_owned(),
            payment_id: "payment-1".to_owned(),
            amount: money(59_800),
            reason: PaymentFailureReason::Declined,
            message: Some("do not honour".to_owned()),
        })
    }

    fn cancelled(id: u128) -> Event {
        Event::OrderCancelled(OrderCancelled {
            envelope: envelope::<OrderCancelled>(id),
            order_id: ORDER.to_owned(),
            customer_id: "customer-1".to_owned(),
            reason: CancellationReason::PaymentFailed,
            detail: "the payment was declined".to_owned(),
        })
    }

    fn shipped(id: u128) -> Event {
        Event::ShipmentCreated(ShipmentCreated {
            envelope: envelope::<ShipmentCreated>(id),
            order_id: ORDER.to_owned(),
            customer_id: "customer-1".to_owned(),
            shipment_id: "shipment-1".to_owned(),
            lines: vec![StockLine {
                sku: "SKU-1".to_owned(),
                quantity: 2,
            }],
            carrier: Carrier::Postnord,
            service_level: ServiceLevel::Standard,
            tracking_number: "00373123456789012345".to_owned(),
            label: ShippingLabel {
                format: LabelFormat::Text,
                document: b"label".to_vec(),
            },
        })
    }

    /// Handles `input` at `now` (microseconds after `START`) and returns the outputs.
    fn handle(
        handler: &NotificationHandler,
        input: &Event,
        state: &mut Option<OrderNotifications>,
        after: i64,
    ) -> Vec<Event> {
        let mut context = Context::new(
            input.envelope(),
            "notification",
            Timestamp::from_micros(START + after),
        );
        handler.handle(input, state, &mut context).expect("handled");
        context.into_outputs()
    }

    /// Fires the state's timer as the runtime does: at its due time, on behalf of its cause.
    fn fire(handler: &NotificationHandler, state: &mut Option<OrderNotifications>) -> Vec<Event> {
        let timer = state
            .as_ref()
            .and_then(|state| handler.timer(state))
            .expect("a timer is set");
        let mut context = Context::new(&timer.cause, "notification", timer.due);
        handler
            .on_timer(ORDER, state, &mut context)
            .expect("timer handled");
        context.into_outputs()
    }

    /// The kinds of NotificationSent outputs, in order; panics on anything else.
    fn sent_kinds(outputs: &[Event]) -> Vec<NotificationKind> {
        outputs
            .iter()
            .map(|output| match output {
                Event::NotificationSent(sent) => sent.kind,
                other => panic!("NotificationSent expected, got {other:?}"),
            })
            .collect()
    }

    fn failed(outputs: &[Event]) -> Vec<NotificationFailed> {
        outputs
            .iter()
            .map(|output| match output {
                Event::NotificationFailed(failed) => failed.clone(),
                other => panic!("NotificationFailed expected, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_order_placed_is_confirmed_once() {
        let (handler, channel) = handler();
        let mut state = None;
        let input = placed(1);
        let outputs = handle(&handler, &input, &mut state, 0);
        let [Event::NotificationSent(sent)] = outputs.as_slice() else {
            panic!("one NotificationSent expected, got {outputs:?}");
        };
        assert_eq!(sent.kind, NotificationKind::OrderConfirmed);
        assert_eq!(sent.order_id, ORDER);
        assert_eq!(sent.customer_id, "customer-1");
        assert_eq!(sent.attempts, 1);
        assert_eq!(sent.channel, NotificationChannel::Webhook);
        assert_eq!(
            sent.notification_id,
            notification_id(ORDER, NotificationKind::OrderConfirmed)
        );
        assert_eq!(
            sent.envelope.event_id,
            EventId::derived(
                input.envelope().event_id,
                NotificationSent::NAME,
                "ORDER_CONFIRMED"
            )
        );
        assert_eq!(sent.envelope.causation_id, Some(input.envelope().event_id));

        let delivered = channel.delivered();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].notification_id, sent.notification_id);
        assert_eq!(delivered[0].recipient.email, "anna@example.com");
        assert_eq!(delivered[0].subject, "Your order order-1 is confirmed");
        assert!(
            delivered[0].body.contains("Hi Anna Andersson"),
            "{}",
            delivered[0].body
        );
        assert!(
            delivered[0].body.contains("2 x Rain jacket"),
            "{}",
            delivered[0].body
        );
        assert!(
            delivered[0].body.contains("598.00 SEK"),
            "{}",
            delivered[0].body
        );

        // The same OrderPlaced again, and another one for the order: nothing.
        assert!(handle(&handler, &input, &mut state, 5).is_empty());
        assert!(handle(&handler, &placed(2), &mut state, 6).is_empty());
        assert_eq!(channel.delivered().len(), 1);
    }

    #[test]
    fn every_kind_is_notified_once_and_duplicates_send_nothing() {
        let (handler, channel) = handler();
        let mut state = None;
        let mut kinds = Vec::new();
        for input in [placed(1), payment_failed(2), cancelled(3), shipped(4)] {
            kinds.extend(sent_kinds(&handle(&handler, &input, &mut state, 0)));
        }
        assert_eq!(
            kinds,
            [
                NotificationKind::OrderConfirmed,
                NotificationKind::PaymentFailed,
                NotificationKind::OrderCancelled,
                NotificationKind::OrderShipped,
            ]
        );
        // Re-deliveries (same ids) and new events of the same kinds (new ids).
        for input in [
            placed(1),
            payment_failed(2),
            cancelled(3),
            shipped(4),
            placed(11),
            payment_failed(12),
            cancelled(13),
            shipped(14),
        ] {
            assert!(
                handle(&handler, &input, &mut state, 10).is_empty(),
                "{input:?}"
            );
        }
        assert_eq!(channel.delivered().len(), 4);
        let settled = state.expect("state").outcomes;
        assert!(
            settled
                .iter()
                .all(|settled| settled.outcome == Outcome::Sent)
        );
        assert_eq!(settled.len(), 4);
    }

    #[test]
    fn messages_carry_the_details_of_their_events() {
        let (handler, channel) = handler();
        let mut state = None;
        for input in [placed(1), payment_failed(2), cancelled(3), shipped(4)] {
            handle(&handler, &input, &mut state, 0);
        }
        let delivered = channel.delivered();
        let body = |kind| {
            delivered
                .iter()
                .find(|message| message.kind == kind)
                .map(|message| (message.subject.clone(), message.body.clone()))
                .expect("delivered")
        };
        let (subject, text) = body(NotificationKind::PaymentFailed);
        assert_eq!(subject, "Payment for order order-1 failed");
        assert!(text.contains("the payment was declined"), "{text}");
        assert!(text.contains("do not honour"), "{text}");
        assert!(text.contains("598.00 SEK"), "{text}");
        let (subject, text) = body(NotificationKind::OrderCancelled);
        assert_eq!(subject, "Your order order-1 was cancelled");
        assert!(text.contains("because the payment failed"), "{text}");
        assert!(text.contains("the payment was declined"), "{text}");
        let (subject, text) = body(NotificationKind::OrderShipped);
        assert_eq!(subject, "Your order order-1 has shipped");
        assert!(text.contains("with PostNord (standard)"), "{text}");
        assert!(text.contains("00373123456789012345"), "{text}");
        for message in &delivered {
            assert_eq!(
                message.notification_id,
                notification_id(ORDER, message.kind)
            );
            assert!(message.body.contains("Anna Andersson"), "{}", message.body);
        }
    }

    #[test]
    fn messages_before_the_order_placed_wait_and_go_out_when_it_arrives() {
        let (handler, channel) = handler();
        let mut state = None;
        let first = shipped(4);
        assert!(handle(&handler, &first, &mut state, 0).is_empty());
        assert!(handle(&handler, &cancelled(3), &mut state, 1_000).is_empty());
        // A duplicate of a waiting kind does not wait twice.
        assert!(handle(&handler, &shipped(14), &mut state, 2_000).is_empty());
        assert!(channel.delivered().is_empty());
        {
            let waiting = state.as_ref().expect("state");
            assert_eq!(waiting.pending.len(), 2);
            let timer = handler.timer(waiting).expect("a deadline");
            assert_eq!(
                timer.due,
                Timestamp::from_micros(START + 600_000_000),
                "ten minutes after the first waiting event"
            );
            assert_eq!(timer.cause, *first.envelope());
            assert_eq!(
                handler.open_since(waiting),
                Some(Timestamp::from_micros(START)),
                "open since the first waiting event"
            );
        }

        let outputs = handle(&handler, &placed(1), &mut state, 5_000);
        assert_eq!(
            sent_kinds(&outputs),
            [
                NotificationKind::OrderConfirmed,
                NotificationKind::OrderShipped,
                NotificationKind::OrderCancelled,
            ]
        );
        let delivered = channel.delivered();
        assert_eq!(delivered.len(), 3);
        assert!(
            delivered[1].body.contains("00373123456789012345"),
            "{}",
            delivered[1].body
        );
        let after = state.expect("state");
        assert!(after.pending.is_empty());
        assert_eq!(after.deadline, None, "the deadline is cleared");
        assert_eq!(handler.open_since(&after), None, "nothing waits any more");
        // What is left is the finished order's retention.
        assert_eq!(
            handler.timer(&after).map(|timer| timer.due),
            after.forget.as_ref().map(|forget| forget.due)
        );
    }

    #[test]
    fn without_an_order_placed_the_timer_gives_the_waiting_messages_up() {
        let (handler, channel) = handler();
        let mut state = None;
        let first = cancelled(3);
        handle(&handler, &first, &mut state, 0);
        handle(&handler, &payment_failed(2), &mut state, 1_000);

        let outputs = fire(&handler, &mut state);
        let failures = failed(&outputs);
        assert_eq!(
            failures
                .iter()
                .map(|failed| failed.kind)
                .collect::<Vec<_>>(),
            [
                NotificationKind::OrderCancelled,
                NotificationKind::PaymentFailed
            ]
        );
        for failure in &failures {
            assert_eq!(failure.attempts, 0);
            assert_eq!(failure.order_id, ORDER);
            assert_eq!(
                failure.error,
                "the customer's contact is unknown: no OrderPlaced for order order-1 arrived within 10m"
            );
            assert_eq!(
                failure.notification_id,
                notification_id(ORDER, failure.kind)
            );
            assert_eq!(
                failure.envelope.causation_id,
                Some(first.envelope().event_id)
            );
            assert_eq!(
                failure.envelope.occurred_at,
                Timestamp::from_micros(START + 600_000_000)
            );
        }
        assert_eq!(failures[0].customer_id, "customer-1");
        assert_eq!(
            failures[1].customer_id, "",
            "PaymentFailed carries no customer id"
        );
        assert!(channel.delivered().is_empty());
        let after = state.clone().expect("state");
        assert_eq!(
            handler.timer(&after).map(|timer| timer.due),
            Some(Timestamp::from_micros(START + 600_000_000).plus(DEFAULT_RETENTION)),
            "the order is forgotten once its cancellation is settled"
        );
        assert_eq!(
            after.outcomes,
            [
                KindOutcome {
                    kind: NotificationKind::OrderCancelled,
                    outcome: Outcome::Failed
                },
                KindOutcome {
                    kind: NotificationKind::PaymentFailed,
                    outcome: Outcome::Failed
                },
            ]
        );

        // The order turns up late: it is confirmed, the given-up kinds stay given up.
        let outputs = handle(&handler, &placed(1), &mut state, 700_000_000);
        assert_eq!(sent_kinds(&outputs), [NotificationKind::OrderConfirmed]);
        assert!(handle(&handler, &cancelled(3), &mut state, 700_000_001).is_empty());
        assert_eq!(channel.delivered().len(), 1);
    }

    #[test]
    fn a_timer_that_fires_again_emits_the_same_events() {
        let (handler, _channel) = handler();
        let mut state = None;
        handle(&handler, &shipped(4), &mut state, 0);
        let before = state.clone();
        let first = fire(&handler, &mut state);
        let mut replayed = before;
        let second = fire(&handler, &mut replayed);
        assert_eq!(first, second);
        assert_eq!(state, replayed);
    }

    #[test]
    fn a_refused_delivery_is_reported_and_never_retried() {
        let (handler, channel) = handler();
        channel.refuse(NotificationKind::OrderShipped);
        let mut state = None;
        handle(&handler, &placed(1), &mut state, 0);
        let outputs = handle(&handler, &shipped(4), &mut state, 10);
        let [failure] = failed(&outputs).try_into().expect("one NotificationFailed");
        assert_eq!(failure.kind, NotificationKind::OrderShipped);
        assert_eq!(failure.attempts, 1);
        assert_eq!(failure.customer_id, "customer-1");
        assert_eq!(failure.channel, NotificationChannel::Webhook);
        assert_eq!(
            failure.error,
            "the webhook refused the message with HTTP 400; not retried"
        );
        assert_eq!(
            failure.envelope.event_id,
            EventId::derived(
                EventId::from_u128(4),
                NotificationFailed::NAME,
                "ORDER_SHIPPED"
            )
        );
        assert!(
            state
                .as_ref()
                .expect("state")
                .outcomes
                .contains(&KindOutcome {
                    kind: NotificationKind::OrderShipped,
                    outcome: Outcome::Failed
                })
        );
        assert!(handle(&handler, &shipped(4), &mut state, 20).is_empty());
        assert!(handle(&handler, &shipped(5), &mut state, 30).is_empty());
        assert_eq!(
            channel.delivered().len(),
            2,
            "one confirmation, one shipping attempt"
        );
    }

    /// The state's one redelivery, with its kind.
    fn waiting(state: &Option<OrderNotifications>) -> Vec<(NotificationKind, Redelivery)> {
        state
            .as_ref()
            .expect("state")
            .waiting()
            .map(|(kind, redelivery)| (kind, redelivery.clone()))
            .collect()
    }

    #[test]
    fn a_delivery_that_may_pass_waits_and_is_sent_once_the_channel_is_back() {
        let (handler, channel) = handler();
        let mut state = None;
        handle(&handler, &placed(1), &mut state, 0);
        channel.fail(NotificationKind::OrderShipped, 3);
        assert!(
            handle(&handler, &shipped(4), &mut state, 10).is_empty(),
            "nothing is emitted while the message waits"
        );
        let [(kind, redelivery)] = waiting(&state).try_into().expect("one waiting");
        assert_eq!(kind, NotificationKind::OrderShipped);
        assert_eq!(redelivery.attempts, 3);
        assert_eq!(redelivery.since, Timestamp::from_micros(START + 10));
        assert_eq!(
            redelivery.next,
            Timestamp::from_micros(START + 10).plus(MINUTE)
        );
        assert_eq!(
            redelivery.last_error,
            "gave up after 3 attempts; the last failed with: HTTP 503"
        );
        let after = state.clone().expect("state");
        assert_eq!(
            handler.timer(&after),
            Some(Timer {
                due: redelivery.next,
                cause: shipped(4).envelope().clone()
            })
        );
        assert_eq!(handler.open_since(&after), Some(redelivery.since));

        // A replayed ShipmentCreated neither sends nor waits twice.
        assert!(handle(&handler, &shipped(4), &mut state, 20).is_empty());
        assert_eq!(channel.delivered().len(), 2);

        // Still down at the next try: it waits another interval.
        assert!(fire(&handler, &mut state).is_empty());
        let [(_, again)] = waiting(&state).try_into().expect("still waiting");
        assert_eq!(again.attempts, 6);
        assert_eq!(again.next, redelivery.next.plus(MINUTE));
        assert_eq!(again.since, redelivery.since);

        // Back: sent with every attempt counted, under the id it would have had at once.
        channel.recover();
        let before = state.clone();
        let outputs = fire(&handler, &mut state);
        let [Event::NotificationSent(sent)] = outputs.as_slice() else {
            panic!("one NotificationSent expected, got {outputs:?}");
        };
        assert_eq!(sent.kind, NotificationKind::OrderShipped);
        assert_eq!(sent.attempts, 7);
        assert_eq!(
            sent.envelope.event_id,
            EventId::derived(
                EventId::from_u128(4),
                NotificationSent::NAME,
                "ORDER_SHIPPED"
            )
        );
        assert_eq!(sent.envelope.causation_id, Some(EventId::from_u128(4)));
        let mut replayed = before;
        assert_eq!(
            fire(&handler, &mut replayed),
            outputs,
            "a timer fired again emits the same"
        );
        let settled = state.as_ref().expect("state");
        assert!(settled.is_settled(NotificationKind::OrderShipped));
        assert!(settled.waiting().next().is_none());
        assert_eq!(
            handler.timer(settled).map(|timer| timer.due),
            settled.forget.as_ref().map(|forget| forget.due),
            "only forgetting the finished order is left"
        );
        assert_eq!(handler.open_since(settled), None);
    }

    #[test]
    fn while_the_channel_is_down_new_messages_wait_untried_and_go_out_in_order() {
        let (handler, channel) = handler();
        let mut state = None;
        channel.fail(NotificationKind::OrderConfirmed, 3);
        assert!(handle(&handler, &placed(1), &mut state, 0).is_empty());
        assert_eq!(channel.delivered().len(), 1);

        // Within the interval the channel is not tried: the cancellation waits untried.
        assert!(handle(&handler, &cancelled(3), &mut state, 10_000_000).is_empty());
        assert_eq!(channel.delivered().len(), 1, "the channel was not tried");
        let kinds: Vec<(NotificationKind, u32)> = waiting(&state)
            .into_iter()
            .map(|(kind, redelivery)| (kind, redelivery.attempts))
            .collect();
        assert_eq!(
            kinds,
            [
                (NotificationKind::OrderConfirmed, 3),
                (NotificationKind::OrderCancelled, 0)
            ]
        );

        // Back: both go out, the confirmation first.
        channel.recover();
        let outputs = fire(&handler, &mut state);
        assert_eq!(
            sent_kinds(&outputs),
            [
                NotificationKind::OrderConfirmed,
                NotificationKind::OrderCancelled
            ]
        );
        let attempts: Vec<i32> = outputs
            .iter()
            .map(|output| match output {
                Event::NotificationSent(sent) => sent.attempts,
                other => panic!("NotificationSent expected, got {other:?}"),
            })
            .collect();
        assert_eq!(attempts, [4, 1]);
        let Event::NotificationSent(cancelled_sent) = &outputs[1] else {
            unreachable!("checked above")
        };
        assert_eq!(
            cancelled_sent.envelope.causation_id,
            Some(EventId::from_u128(3)),
            "each message is caused by its own event"
        );
    }

    #[test]
    fn a_message_the_channel_never_takes_is_given_up_after_the_give_up_period() {
        let (handler, channel) = handler();
        let handler = handler.with_redelivery(MINUTE, 5 * MINUTE);
        let mut state = None;
        channel.fail(NotificationKind::OrderConfirmed, 3);
        handle(&handler, &placed(1), &mut state, 0);
        let mut fired = 0;
        let failure = loop {
            let outputs = fire(&handler, &mut state);
            fired += 1;
            if let [Event::NotificationFailed(failure)] = outputs.as_slice() {
                break failure.clone();
            }
            assert!(outputs.is_empty(), "{outputs:?}");
            assert!(fired < 10, "never given up");
        };
        assert_eq!(fired, 5, "tries at 1, 2, 3, 4 and 5 minutes");
        assert_eq!(failure.attempts, 18);
        assert_eq!(
            failure.error,
            "gave up after 5m of redelivery and 18 attempts; the last: gave up after 3 attempts; the last failed with: HTTP 503"
        );
        assert_eq!(
            failure.envelope.occurred_at,
            Timestamp::from_micros(START).plus(5 * MINUTE)
        );
        assert!(
            state
                .expect("state")
                .is_settled(NotificationKind::OrderConfirmed)
        );
    }

    #[test]
    fn a_customer_without_an_email_address_gets_failures_not_deliveries() {
        let (handler, channel) = handler();
        let mut state = None;
        let Event::OrderPlaced(mut order) = placed(1) else {
            unreachable!("placed() builds an OrderPlaced");
        };
        order.customer.email = "  ".to_owned();
        let outputs = handle(&handler, &Event::OrderPlaced(order), &mut state, 0);
        let [failure] = failed(&outputs).try_into().expect("one NotificationFailed");
        assert_eq!(failure.kind, NotificationKind::OrderConfirmed);
        assert_eq!(failure.attempts, 0);
        assert_eq!(failure.error, "the customer has no usable e-mail address");
        assert!(channel.delivered().is_empty());
    }

    #[test]
    fn a_finished_order_is_remembered_for_the_retention_then_forgotten() {
        let (handler, _channel) = handler();
        let handler = handler.with_retention(Duration::from_secs(3600));
        let mut state = None;
        handle(&handler, &placed(1), &mut state, 0);
        assert!(
            handler.timer(state.as_ref().expect("state")).is_none(),
            "an order in progress is kept"
        );
        handle(&handler, &shipped(2), &mut state, 10);
        let timer = handler
            .timer(state.as_ref().expect("state"))
            .expect("retention timer");
        assert_eq!(
            timer.due,
            Timestamp::from_micros(START + 10).plus(Duration::from_secs(3600))
        );
        // Until then, replays send nothing.
        assert!(handle(&handler, &shipped(3), &mut state, 20).is_empty());
        assert!(fire(&handler, &mut state).is_empty());
        assert!(state.is_none());
    }

    #[test]
    fn handling_is_deterministic() {
        let inputs = [shipped(4), payment_failed(2), placed(1), cancelled(3)];
        let run = || {
            let (handler, channel) = handler();
            let mut state = None;
            let outputs: Vec<Event> = inputs
                .iter()
                .enumerate()
                .flat_map(|(index, input)| {
                    handle(
                        &handler,
                        input,
                        &mut state,
                        i64::try_from(index).expect("small"),
                    )
                })
                .collect();
            (outputs, state, channel.delivered())
        };
        let first = run();
        assert_eq!(first.0.len(), 4);
        assert_eq!(first, run());
    }

    #[test]
    fn events_that_call_for_no_message_are_ignored() {
        let (handler, channel) = handler();
        let authorized = Event::PaymentAuthorized(PaymentAuthorized {
            envelope: envelope::<PaymentAuthorized>(7),
            order_id: ORDER.to_owned(),
            payment_id: "payment-1".to_owned(),
            amount: money(59_800),
            method: PaymentMethod::Card,
            authorization_code: "A1".to_owned(),
        });
        let started = Event::FulfilmentStarted(FulfilmentStarted {
            envelope: envelope::<FulfilmentStarted>(8),
            order_id: ORDER.to_owned(),
            warehouse_id: "w1".to_owned(),
            pack_by: Timestamp::from_micros(START),
        });
        for input in [authorized, started] {
            let mut state = None;
            assert!(handle(&handler, &input, &mut state, 0).is_empty());
            assert_eq!(state, None, "no state for an ignored event");
        }
        assert!(channel.delivered().is_empty());
    }

    #[test]
    fn the_handler_reads_the_four_order_topics_and_keeps_state() {
        let (handler, _channel) = handler();
        assert_eq!(
            handler.inputs(),
            [
                Topic::StorefrontOrders,
                Topic::Payments,
                Topic::FulfilmentOrders,
                Topic::ShippingShipments
            ]
        );
        assert_eq!(handler.outputs(), [Topic::NotificationNotifications]);
        assert_eq!(NotificationHandler::STORE, Some("notifications"));
    }

    #[test]
    fn the_state_survives_the_changelog_encoding() {
        let (handler, _channel) = handler();
        let mut state = None;
        handle(&handler, &shipped(4), &mut state, 0);
        handle(&handler, &payment_failed(2), &mut state, 1);
        let mut placed_state = state.clone();
        handle(&handler, &placed(1), &mut placed_state, 2);
        for state in [state, placed_state] {
            let state = state.expect("state");
            let bytes = postcard::to_stdvec(&state).expect("encodes");
            let decoded: OrderNotifications = postcard::from_bytes(&bytes).expect("decodes");
            assert_eq!(decoded, state);
        }
    }

    /// A state as the worker wrote it before deliveries could wait for a webhook's return:
    /// one settled kind of each outcome, a message waiting for the contact, both deadlines.
    fn state_written_by_0_1() -> OrderNotifications {
        let (handler, channel) = handler();
        channel.fail(NotificationKind::PaymentFailed, 3);
        let mut state = None;
        handle(&handler, &shipped(4), &mut state, 0);
        let mut state = state.expect("state");
        let Some(Event::OrderPlaced(order)) = Some(placed(1)) else {
            unreachable!()
        };
        state.order = Some(PlacedOrder::from_event(&order));
        state.outcomes = vec![
            KindOutcome {
                kind: NotificationKind::OrderConfirmed,
                outcome: Outcome::Sent,
            },
            KindOutcome {
                kind: NotificationKind::PaymentFailed,
                outcome: Outcome::Failed,
            },
        ];
        state.forget = state.deadline.clone();
        state
    }

    /// The changelog holds states written by earlier versions of the worker, and postcard
    /// is not self-describing: a changed struct would no longer read them. State changes are
    /// therefore new enum variants at the end, which leave old bytes readable. These bytes were
    /// written before deliveries could wait for a webhook's return.
    #[test]
    fn a_state_written_before_redelivery_still_reads() {
        const WRITTEN_BY_0_1: &str = "010a637573746f6d65722d3110616e6e61406578616d706c652e636f6d0e416e6e6120416e64657273736f6eb0a6070353454b0105534b552d310b5261696e206a61636b65740498d3030353454b020100020101010a637573746f6d65722d310301021430303337333132333435363738393031323334350a736869706d656e742d310180988cbe878985062430303030303030302d303030302d303030302d303030302d3030303030303030303030340f536869706d656e74437265617465648080f28183898506076f726465722d31000474657374020180988cbe878985062430303030303030302d303030302d303030302d303030302d3030303030303030303030340f536869706d656e74437265617465648080f28183898506076f726465722d3100047465737402";
        let bytes: Vec<u8> = (0..WRITTEN_BY_0_1.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&WRITTEN_BY_0_1[at..at + 2], 16).expect("hex"))
            .collect();
        let decoded: OrderNotifications = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(decoded, state_written_by_0_1());
        assert_eq!(
            postcard::to_stdvec(&decoded).expect("encodes"),
            bytes,
            "the same state is written the same way"
        );
    }
}
