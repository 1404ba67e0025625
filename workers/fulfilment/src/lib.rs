//! The fulfilment worker: per order, waits for the three answers (stock reserved, payment
//! authorised, fraud cleared) in any order; then starts fulfilment and, after the pick-and-pack
//! time, announces the order packed. A negative answer, or a deadline without all three, cancels
//! the order with the reason. Nothing coordinates the saga: this is only the one service that
//! decides an order's fate from what the others announced.
//!
//! State is per order id (every input topic is keyed by it). The two waits are timers kept in
//! the state ([`retail_runtime::Handler::timer`]): they survive restarts and rebalances, and a
//! timer that fires again after a crash emits the very same event.
//!
//! Late, duplicate and out-of-order events: the first answer of each kind counts; any answer
//! after the order was cancelled or started changes nothing (a `FraudCleared` after a
//! cancellation does not revive the order); an answer may arrive before the order itself. A
//! finished order is remembered for `--order-retention`, so late events find it.

use std::time::Duration;

use retail_events::common::{Address, DeliverySpeed, StockLine};
use retail_events::fulfilment::{
    CancellationReason, FulfilmentStarted, OrderCancelled, OrderPacked,
};
use retail_events::storefront::OrderPlaced;
use retail_events::{Envelope, Event, Timestamp, Topic};
use retail_runtime::telemetry::{COUNTER, MetricInfo};
use retail_runtime::{Context, Handler, HandlerError, Timer};

/// Orders cancelled, by reason (the runtime counts events, not why).
const ORDERS_CANCELLED: &str = "fulfilment_orders_cancelled_total";

/// The fulfilment worker's own metrics, beside the runtime's (`retail_runtime::telemetry::METRICS`).
pub const METRICS: &[MetricInfo] = &[MetricInfo {
    name: ORDERS_CANCELLED,
    kind: COUNTER,
    labels: &["reason"],
    description: "Orders cancelled by fulfilment, by reason (OUT_OF_STOCK, PAYMENT_FAILED, FRAUD_SUSPECTED, TIMEOUT). A jump in one reason points at its service: inventory, payments, fraud, or an answer that never came.",
}];

/// The `reason` label of a cancellation: the Avro enum symbol.
fn reason_label(reason: CancellationReason) -> &'static str {
    match reason {
        CancellationReason::Unknown => "UNKNOWN",
        CancellationReason::OutOfStock => "OUT_OF_STOCK",
        CancellationReason::PaymentFailed => "PAYMENT_FAILED",
        CancellationReason::FraudSuspected => "FRAUD_SUSPECTED",
        CancellationReason::Timeout => "TIMEOUT",
    }
}
use serde::{Deserialize, Serialize};

/// The fulfilment worker's own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct FulfilmentConfig {
    /// How long an order may wait for its three answers (stock, payment, fraud check), from the
    /// first event about it, before it is cancelled with reason TIMEOUT.
    #[arg(
        long,
        env = "FULFILMENT_ANSWER_DEADLINE",
        default_value = "5m",
        value_parser = humantime::parse_duration,
    )]
    pub answer_deadline: Duration,

    /// Time from the start of fulfilment to the order being packed.
    #[arg(
        long,
        env = "FULFILMENT_PICK_PACK_TIME",
        default_value = "2s",
        value_parser = humantime::parse_duration,
    )]
    pub pick_pack_time: Duration,

    /// The warehouse that fulfils the orders.
    #[arg(long, env = "FULFILMENT_WAREHOUSE_ID", default_value = "WH-1")]
    pub warehouse_id: String,

    /// Heaviest parcel in grams: an order heavier than this ships in several parcels.
    #[arg(
        long,
        env = "FULFILMENT_MAX_PARCEL_WEIGHT_GRAMS",
        default_value_t = 20_000,
        value_parser = clap::value_parser!(i32).range(1..),
    )]
    pub max_parcel_weight_grams: i32,

    /// How long a finished (packed or cancelled) order is remembered, so late events about it
    /// change nothing.
    #[arg(
        long,
        env = "FULFILMENT_ORDER_RETENTION",
        default_value = "7d",
        value_parser = humantime::parse_duration,
    )]
    pub order_retention: Duration,
}

/// Settings that do not make sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--answer-deadline (FULFILMENT_ANSWER_DEADLINE) must be longer than zero")]
    ZeroDeadline,
    #[error("--warehouse-id (FULFILMENT_WAREHOUSE_ID) must not be empty")]
    EmptyWarehouse,
    #[error(
        "--order-retention (FULFILMENT_ORDER_RETENTION, {retention:?}) must be longer than --answer-deadline ({deadline:?}), or late answers could revive a forgotten order"
    )]
    RetentionBelowDeadline {
        retention: Duration,
        deadline: Duration,
    },
}

/// One of the three answers an order waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Not yet.
    Pending,
    /// Reserved / authorised / cleared.
    Yes,
    /// Rejected / failed / flagged: the order was cancelled for it.
    No,
}

/// What fulfilment keeps of the order itself (for `OrderPacked`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub customer_id: String,
    pub lines: Vec<StockLine>,
    pub total_weight_grams: i32,
    pub delivery_speed: DeliverySpeed,
    pub shipping_address: Address,
}

/// Where an order is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Waiting for answers until `deadline`; `cause` is the first event about the order (the
    /// cause of a timeout cancellation).
    Waiting {
        deadline: Timestamp,
        cause: Envelope,
    },
    /// Fulfilment started; packed at `pack_at`. `cause` is the event that completed the answers.
    Packing { pack_at: Timestamp, cause: Envelope },
    /// Packed. Final.
    Packed {
        forget_at: Timestamp,
        cause: Envelope,
    },
    /// Cancelled. Final.
    Cancelled {
        reason: CancellationReason,
        forget_at: Timestamp,
        cause: Envelope,
    },
}

/// The state of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub placed: Option<Placed>,
    pub stock: Answer,
    pub payment: Answer,
    pub fraud: Answer,
    pub phase: Phase,
}

impl OrderState {
    fn is_waiting(&self) -> bool {
        matches!(self.phase, Phase::Waiting { .. })
    }

    /// The answers not yet in, for a timeout's detail.
    fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.placed.is_none() {
            missing.push("the order itself (storefront)");
        }
        if self.stock == Answer::Pending {
            missing.push("stock (inventory)");
        }
        if self.payment == Answer::Pending {
            missing.push("payment (payments)");
        }
        if self.fraud == Answer::Pending {
            missing.push("fraud check (fraud)");
        }
        missing
    }
}

/// The fulfilment handler.
#[derive(Debug, Clone)]
pub struct Fulfilment {
    config: FulfilmentConfig,
}

impl Fulfilment {
    /// The handler, once the settings are checked.
    pub fn new(config: &FulfilmentConfig) -> Result<Self, ConfigError> {
        if config.answer_deadline.is_zero() {
            return Err(ConfigError::ZeroDeadline);
        }
        if config.warehouse_id.trim().is_empty() {
            return Err(ConfigError::EmptyWarehouse);
        }
        if config.order_retention <= config.answer_deadline {
            return Err(ConfigError::RetentionBelowDeadline {
                retention: config.order_retention,
                deadline: config.answer_deadline,
            });
        }
        Ok(Self {
            config: config.clone(),
        })
    }

    fn placed(order: &OrderPlaced) -> Result<Placed, HandlerError> {
        if order.lines.is_empty() {
            return Err(HandlerError::rejected("an order without lines"));
        }
        let mut weight: i64 = 0;
        for line in &order.lines {
            if line.quantity <= 0 || line.unit_weight_grams < 0 {
                return Err(HandlerError::rejected(format!(
                    "line {}: quantity {} and unit weight {} g",
                    line.line_number, line.quantity, line.unit_weight_grams
                )));
            }
            weight += i64::from(line.quantity) * i64::from(line.unit_weight_grams);
        }
        Ok(Placed {
            customer_id: order.customer.customer_id.clone(),
            lines: order
                .lines
                .iter()
                .map(|line| StockLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                })
                .collect(),
            total_weight_grams: i32::try_from(weight).map_err(|_| {
                HandlerError::rejected(format!("order weight {weight} g does not fit"))
            })?,
            delivery_speed: order.delivery_speed,
            shipping_address: order.shipping_address.clone(),
        })
    }

    /// Cancels a waiting order.
    fn cancel(
        &self,
        order_id: &str,
        state: &mut OrderState,
        cancellation: Cancellation<'_>,
        context: &mut Context<'_>,
    ) {
        let customer_id = state
            .placed
            .as_ref()
            .map(|placed| placed.customer_id.as_str())
            .or(cancellation.customer_hint)
            .unwrap_or_default()
            .to_owned();
        context.emit(OrderCancelled {
            envelope: context.envelope_for::<OrderCancelled>(cancellation.discriminator),
            order_id: order_id.to_owned(),
            customer_id,
            reason: cancellation.reason,
            detail: cancellation.detail,
        });
        // Counted when decided; a re-run after a crash before the state was saved counts again,
        // like every at-least-once counter.
        metrics::counter!(ORDERS_CANCELLED, "reason" => reason_label(cancellation.reason))
            .increment(1);
        state.phase = Phase::Cancelled {
            reason: cancellation.reason,
            forget_at: context.now().plus(self.config.order_retention),
            cause: context.input().clone(),
        };
    }

    /// Starts fulfilment once everything is in.
    fn start_if_ready(&self, order_id: &str, state: &mut OrderState, context: &mut Context<'_>) {
        let ready = state.is_waiting()
            && state.placed.is_some()
            && [state.stock, state.payment, state.fraud] == [Answer::Yes; 3];
        if !ready {
            return;
        }
        let pack_at = context.now().plus(self.config.pick_pack_time);
        context.emit(FulfilmentStarted {
            envelope: context.envelope_for::<FulfilmentStarted>(""),
            order_id: order_id.to_owned(),
            warehouse_id: self.config.warehouse_id.clone(),
            pack_by: pack_at,
        });
        state.phase = Phase::Packing {
            pack_at,
            cause: context.input().clone(),
        };
    }

    fn parcels(&self, weight_grams: i32) -> i32 {
        let max = self.config.max_parcel_weight_grams.max(1);
        ((weight_grams + max - 1) / max).max(1)
    }
}

impl Handler for Fulfilment {
    type State = OrderState;
    const STORE: Option<&'static str> = Some("orders");

    fn inputs(&self) -> Vec<Topic> {
        vec![
            Topic::StorefrontOrders,
            Topic::InventoryReservations,
            Topic::Payments,
            Topic::FraudChecks,
        ]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::FulfilmentOrders]
    }

    fn handle(
        &self,
        event: &Event,
        state: &mut Option<OrderState>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let order_id = match event {
            Event::OrderPlaced(e) => &e.order_id,
            Event::StockReserved(e) => &e.order_id,
            Event::StockRejected(e) => &e.order_id,
            Event::PaymentAuthorized(e) => &e.order_id,
            Event::PaymentFailed(e) => &e.order_id,
            Event::FraudCleared(e) => &e.order_id,
            Event::FraudFlagged(e) => &e.order_id,
            // StockReleased and anything else: not an answer.
            _ => return Ok(()),
        };
        // Validate before creating any state: an invalid order is dead-lettered, and the
        // deadline then cancels it if anything else about it arrives.
        let placed = match event {
            Event::OrderPlaced(order) => Some(Self::placed(order)?),
            _ => None,
        };
        let order = state.get_or_insert_with(|| OrderState {
            placed: None,
            stock: Answer::Pending,
            payment: Answer::Pending,
            fraud: Answer::Pending,
            phase: Phase::Waiting {
                deadline: context.now().plus(self.config.answer_deadline),
                cause: context.input().clone(),
            },
        });
        if !order.is_waiting() {
            tracing::debug!(order_id = %order_id, event_type = event.name(), "order already started or cancelled; event ignored");
            return Ok(());
        }
        match event {
            Event::OrderPlaced(_) if order.placed.is_none() => order.placed = placed,
            Event::StockReserved(_) => record(&mut order.stock, Answer::Yes),
            Event::PaymentAuthorized(_) => record(&mut order.payment, Answer::Yes),
            Event::FraudCleared(_) => record(&mut order.fraud, Answer::Yes),
            Event::StockRejected(rejected) if order.stock == Answer::Pending => {
                order.stock = Answer::No;
                let short: Vec<String> = rejected
                    .short_lines
                    .iter()
                    .map(|line| {
                        format!(
                            "{} (requested {}, available {})",
                            line.sku, line.requested, line.available
                        )
                    })
                    .collect();
                let detail = format!("out of stock: {}", short.join(", "));
                let cancellation = Cancellation::new(CancellationReason::OutOfStock, detail);
                self.cancel(order_id, order, cancellation, context);
            }
            Event::PaymentFailed(failed) if order.payment == Answer::Pending => {
                order.payment = Answer::No;
                let detail = match &failed.message {
                    Some(message) => format!("payment failed ({:?}): {message}", failed.reason),
                    None => format!("payment failed ({:?})", failed.reason),
                };
                let cancellation = Cancellation::new(CancellationReason::PaymentFailed, detail);
                self.cancel(order_id, order, cancellation, context);
            }
            Event::FraudFlagged(flagged) if order.fraud == Answer::Pending => {
                order.fraud = Answer::No;
                let rules: Vec<String> = flagged
                    .signals
                    .iter()
                    .map(|signal| format!("{:?} +{}", signal.rule, signal.points))
                    .collect();
                let detail = format!(
                    "fraud score {} >= {}: {}",
                    flagged.score,
                    flagged.threshold,
                    rules.join(", ")
                );
                let cancellation = Cancellation {
                    customer_hint: Some(&flagged.customer_id),
                    ..Cancellation::new(CancellationReason::FraudSuspected, detail)
                };
                self.cancel(order_id, order, cancellation, context);
            }
            // A second, contradicting answer of a kind already answered: the first counts.
            _ => {}
        }
        self.start_if_ready(order_id, order, context);
        Ok(())
    }

    fn metrics(&self) -> &'static [MetricInfo] {
        METRICS
    }

    /// An order is open from the first event about it until it is packed or cancelled; while
    /// packing, from the start of fulfilment (the state keeps no earlier time).
    fn open_since(&self, state: &OrderState) -> Option<Timestamp> {
        match &state.phase {
            Phase::Waiting { deadline, .. } => Some(deadline.minus(self.config.answer_deadline)),
            Phase::Packing { pack_at, .. } => Some(pack_at.minus(self.config.pick_pack_time)),
            Phase::Packed { .. } | Phase::Cancelled { .. } => None,
        }
    }

    fn timer(&self, state: &OrderState) -> Option<Timer> {
        let (due, cause) = match &state.phase {
            Phase::Waiting { deadline, cause } => (*deadline, cause),
            Phase::Packing { pack_at, cause } => (*pack_at, cause),
            Phase::Packed { forget_at, cause }
            | Phase::Cancelled {
                forget_at, cause, ..
            } => (*forget_at, cause),
        };
        Some(Timer {
            due,
            cause: cause.clone(),
        })
    }

    fn on_timer(
        &self,
        key: &str,
        state: &mut Option<OrderState>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let Some(order) = state else {
            return Ok(());
        };
        match &order.phase {
            Phase::Waiting { .. } => {
                let detail = format!(
                    "no answer within {} from: {}",
                    humantime::format_duration(self.config.answer_deadline),
                    order.missing().join(", ")
                );
                let cancellation = Cancellation {
                    discriminator: "timeout",
                    ..Cancellation::new(CancellationReason::Timeout, detail)
                };
                self.cancel(key, order, cancellation, context);
            }
            Phase::Packing { cause, .. } => {
                let cause = cause.clone();
                let Some(placed) = &order.placed else {
                    return Err(HandlerError::rejected(
                        "packing an order whose placement is unknown (a defect)",
                    ));
                };
                context.emit(OrderPacked {
                    envelope: context.envelope_for::<OrderPacked>(""),
                    order_id: key.to_owned(),
                    customer_id: placed.customer_id.clone(),
                    lines: placed.lines.clone(),
                    parcel_count: self.parcels(placed.total_weight_grams),
                    total_weight_grams: placed.total_weight_grams,
                    delivery_speed: placed.delivery_speed,
                    shipping_address: placed.shipping_address.clone(),
                });
                order.phase = Phase::Packed {
                    forget_at: context.now().plus(self.config.order_retention),
                    cause,
                };
            }
            Phase::Packed { .. } | Phase::Cancelled { .. } => *state = None,
        }
        Ok(())
    }
}

/// Why and how an order is cancelled.
struct Cancellation<'a> {
    reason: CancellationReason,
    detail: String,
    /// Tells a timeout's cancellation (caused by the order's first event) from one caused by
    /// that same event's answer.
    discriminator: &'static str,
    /// The customer, when the order itself is not known yet.
    customer_hint: Option<&'a str>,
}

impl Cancellation<'_> {
    fn new(reason: CancellationReason, detail: String) -> Self {
        Self {
            reason,
            detail,
            discriminator: "",
            customer_hint: None,
        }
    }
}

/// Records a positive answer unless one of its kind is already in.
fn record(answer: &mut Answer, value: Answer) {
    if *answer == Answer::Pending {
        *answer = value;
    }
}

#[cfg(test)]
mod tests;
