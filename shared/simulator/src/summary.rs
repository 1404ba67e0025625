//! What a run sent and what the saga is expected to make of it: the JSON written to
//! `--summary-file`, and the vocabulary (order category, expected outcome, stock class) the plan
//! uses. The end-to-end tests deserialise [`Summary`] and check the saga's outputs against it.
//!
//! Format (one object):
//! ```json
//! {
//!   "seed": 7, "started_at": 1700000000000000, "orders_planned": 100, "orders_sent": 100,
//!   "stopped_early": false,
//!   "counts": {"normal": 82, "payment_failure": 5, "fraud": 3, "out_of_stock": 3,
//!              "missing_payment": 2, "scarce": 5},
//!   "orders": [{"order_id": "…", "customer_id": "cus-…", "category": "payment_failure",
//!               "expected": {"outcome": "CANCELLED", "reason": "PAYMENT_FAILED"},
//!               "lines": [{"sku": "HOME-MUG-001", "quantity": 2}], "payment": "FAILED",
//!               "expected_notifications": ["ORDER_CONFIRMED", "PAYMENT_FAILED", "ORDER_CANCELLED"]}],
//!   "skus": [{"sku": "HOME-MUG-001", "class": "ample", "initial_stock": 57, "demand": 32,
//!             "restocked_units": 0, "restocks": 0}]
//! }
//! ```
//! `expected.outcome` is `SHIPPED`, `SHIPPED_OR_OUT_OF_STOCK` (no `reason`) or `CANCELLED` (with
//! `reason` `OUT_OF_STOCK`, `PAYMENT_FAILED`, `FRAUD_SUSPECTED` or `TIMEOUT`). `payment` is
//! `AUTHORIZED`, `FAILED` or `NONE`. `expected_notifications` lists the notifications certain to
//! be sent; for `SHIPPED_OR_OUT_OF_STOCK` that is only `ORDER_CONFIRMED`, and
//! [`OrderSummary::notifications_for_outcome`] adds the one that depends on the outcome.
//! `started_at` is microseconds since the Unix epoch: the time order offsets count from.

use std::collections::BTreeMap;

use retail_events::Timestamp;
use retail_events::common::StockLine;
use retail_events::fulfilment::CancellationReason;
use retail_events::notification::NotificationKind;
use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::restock::RestockTally;

/// What kind of order the storefront places, which decides how the saga must end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Established customer, everyday products, payment authorised: shipped.
    Normal,
    /// Like normal, but the payment fails: cancelled, `PAYMENT_FAILED`.
    PaymentFailure,
    /// New customer, large amount, billing and shipping countries differ: cancelled,
    /// `FRAUD_SUSPECTED`.
    Fraud,
    /// One line of a discontinued product: cancelled, `OUT_OF_STOCK`.
    OutOfStock,
    /// No payment answer ever comes: cancelled, `TIMEOUT`.
    MissingPayment,
    /// One line of a scarce product: shipped if inventory reserved it first, else cancelled.
    Scarce,
}

impl Category {
    /// Every category, in the order the summary lists counts.
    pub const ALL: [Category; 6] = [
        Category::Normal,
        Category::PaymentFailure,
        Category::Fraud,
        Category::OutOfStock,
        Category::MissingPayment,
        Category::Scarce,
    ];

    /// How the saga must end an order of this category.
    pub const fn expected(self) -> Expected {
        match self {
            Category::Normal => Expected::Shipped,
            Category::PaymentFailure => Expected::Cancelled {
                reason: CancellationReason::PaymentFailed,
            },
            Category::Fraud => Expected::Cancelled {
                reason: CancellationReason::FraudSuspected,
            },
            Category::OutOfStock => Expected::Cancelled {
                reason: CancellationReason::OutOfStock,
            },
            Category::MissingPayment => Expected::Cancelled {
                reason: CancellationReason::Timeout,
            },
            Category::Scarce => Expected::ShippedOrOutOfStock,
        }
    }

    /// What the payment system answers for an order of this category.
    pub const fn payment(self) -> PaymentSent {
        match self {
            Category::PaymentFailure => PaymentSent::Failed,
            Category::MissingPayment => PaymentSent::NotSent,
            Category::Normal | Category::Fraud | Category::OutOfStock | Category::Scarce => {
                PaymentSent::Authorized
            }
        }
    }
}

/// How the saga is expected to end an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Expected {
    /// Packed and shipped.
    Shipped,
    /// Shipped, or cancelled with `OUT_OF_STOCK`: several orders compete for too few units.
    ShippedOrOutOfStock,
    /// Cancelled by fulfilment for this reason.
    Cancelled {
        /// The `OrderCancelled` reason.
        reason: CancellationReason,
    },
}

/// Which payment event was sent for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentSent {
    /// `PaymentAuthorized`.
    Authorized,
    /// `PaymentFailed`.
    Failed,
    /// No payment event.
    #[serde(rename = "NONE")]
    NotSent,
}

/// How a SKU is stocked in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkuClass {
    /// Initial stock above the run's whole demand; restocked on every `LowStock`.
    Ample,
    /// Initial stock below the demand of the orders that ask for it; never restocked.
    Scarce,
    /// No stock, never restocked.
    Discontinued,
}

/// Orders sent per category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounts {
    pub normal: u64,
    pub payment_failure: u64,
    pub fraud: u64,
    pub out_of_stock: u64,
    pub missing_payment: u64,
    pub scarce: u64,
}

impl CategoryCounts {
    /// The count of one category.
    pub fn get(&self, category: Category) -> u64 {
        match category {
            Category::Normal => self.normal,
            Category::PaymentFailure => self.payment_failure,
            Category::Fraud => self.fraud,
            Category::OutOfStock => self.out_of_stock,
            Category::MissingPayment => self.missing_payment,
            Category::Scarce => self.scarce,
        }
    }

    /// Counts one more order of `category`.
    pub fn add(&mut self, category: Category) {
        let count = match category {
            Category::Normal => &mut self.normal,
            Category::PaymentFailure => &mut self.payment_failure,
            Category::Fraud => &mut self.fraud,
            Category::OutOfStock => &mut self.out_of_stock,
            Category::MissingPayment => &mut self.missing_payment,
            Category::Scarce => &mut self.scarce,
        };
        *count += 1;
    }

    /// All orders.
    pub fn total(&self) -> u64 {
        Category::ALL
            .iter()
            .map(|category| self.get(*category))
            .sum()
    }
}

/// One order that was sent, and what the saga must do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// The order id: the key and correlation id of every event of the order.
    pub order_id: String,
    /// Who placed it; fraud velocity is counted per customer.
    pub customer_id: String,
    /// Why it was generated.
    pub category: Category,
    /// How the saga must end it.
    pub expected: Expected,
    /// SKUs and quantities ordered, for checking reservations and shipments.
    pub lines: Vec<StockLine>,
    /// Which payment event was sent.
    pub payment: PaymentSent,
    /// Notifications certain to be sent for the order (see the module documentation).
    pub expected_notifications: Vec<NotificationKind>,
}

impl OrderSummary {
    /// The notifications for the order once its outcome is known: `shipped` is whether it was
    /// shipped (for `SHIPPED_OR_OUT_OF_STOCK` orders, the one thing the plan cannot know).
    pub fn notifications_for_outcome(&self, shipped: bool) -> Vec<NotificationKind> {
        let mut kinds = vec![NotificationKind::OrderConfirmed];
        if self.payment == PaymentSent::Failed {
            kinds.push(NotificationKind::PaymentFailed);
        }
        kinds.push(if shipped {
            NotificationKind::OrderShipped
        } else {
            NotificationKind::OrderCancelled
        });
        kinds
    }
}

/// The notifications certain to be sent for an order ending as `expected`, whose payment
/// answer was `payment`.
pub fn expected_notifications(expected: Expected, payment: PaymentSent) -> Vec<NotificationKind> {
    let mut kinds = vec![NotificationKind::OrderConfirmed];
    if payment == PaymentSent::Failed {
        kinds.push(NotificationKind::PaymentFailed);
    }
    match expected {
        Expected::Shipped => kinds.push(NotificationKind::OrderShipped),
        Expected::Cancelled { .. } => kinds.push(NotificationKind::OrderCancelled),
        Expected::ShippedOrOutOfStock => {}
    }
    kinds
}

/// One SKU of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuSummary {
    pub sku: String,
    /// How it was stocked.
    pub class: SkuClass,
    /// Units of the start-up `StockAdjusted` (0: none was sent).
    pub initial_stock: i64,
    /// Units ordered by the orders sent.
    pub demand: i64,
    /// Units sent in answer to `LowStock`, in total (initial stock not included).
    pub restocked_units: i64,
    /// Restock `StockAdjusted` events sent.
    pub restocks: u64,
}

/// What a run sent and what the saga is expected to make of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The seed the run was generated from.
    pub seed: u64,
    /// When the first order was due; every planned time counts from it.
    pub started_at: Timestamp,
    /// Orders the run was to send.
    pub orders_planned: u64,
    /// Orders sent (fewer than planned when the run was stopped by a signal).
    pub orders_sent: u64,
    /// Whether a signal stopped the run before every planned order was sent.
    pub stopped_early: bool,
    /// Orders sent per category.
    pub counts: CategoryCounts,
    /// Every order sent, in the order sent.
    pub orders: Vec<OrderSummary>,
    /// Every SKU of the run's catalogue.
    pub skus: Vec<SkuSummary>,
}

impl Summary {
    /// The summary of a run of `plan` that started at `started_at`, sent its first
    /// `orders_sent` orders (with their payments) and answered `LowStock` with `restocks`.
    pub fn build(
        plan: &Plan,
        started_at: Timestamp,
        orders_sent: usize,
        restocks: &BTreeMap<String, RestockTally>,
    ) -> Self {
        let sent = &plan.orders[..orders_sent.min(plan.orders.len())];
        let mut counts = CategoryCounts::default();
        let mut demand: BTreeMap<&str, i64> = BTreeMap::new();
        let orders = sent
            .iter()
            .map(|order| {
                counts.add(order.category);
                for line in &order.lines {
                    *demand.entry(line.sku.as_str()).or_default() += i64::from(line.quantity);
                }
                let expected = order.category.expected();
                let payment = order.payment_sent();
                OrderSummary {
                    order_id: order.order_id.clone(),
                    customer_id: order.customer.customer_id.clone(),
                    category: order.category,
                    expected,
                    lines: order
                        .lines
                        .iter()
                        .map(|line| StockLine {
                            sku: line.sku.clone(),
                            quantity: line.quantity,
                        })
                        .collect(),
                    payment,
                    expected_notifications: expected_notifications(expected, payment),
                }
            })
            .collect();
        let skus = plan
            .skus
            .iter()
            .map(|sku| {
                let tally = restocks.get(sku.product.sku).copied().unwrap_or_default();
                SkuSummary {
                    sku: sku.product.sku.to_owned(),
                    class: sku.class,
                    initial_stock: i64::from(sku.initial_stock),
                    demand: demand.get(sku.product.sku).copied().unwrap_or_default(),
                    restocked_units: tally.units,
                    restocks: tally.restocks,
                }
            })
            .collect();
        Self {
            seed: plan.seed,
            started_at,
            orders_planned: plan.orders.len() as u64,
            orders_sent: sent.len() as u64,
            stopped_early: sent.len() < plan.orders.len(),
            counts,
            orders,
            skus,
        }
    }

    /// The summary of one SKU.
    pub fn sku(&self, sku: &str) -> Option<&SkuSummary> {
        self.skus.iter().find(|summary| summary.sku == sku)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::{MixRates, PlanSettings, generate};

    fn plan() -> Plan {
        generate(
            &PlanSettings {
                orders: 200,
                rate_per_second: 20.0,
                mix: MixRates {
                    payment_failure: 0.1,
                    fraud: 0.1,
                    out_of_stock: 0.1,
                    missing_payment: 0.1,
                    scarce: 0.1,
                },
                payment_delay_min: Duration::from_millis(20),
                payment_delay_max: Duration::from_millis(200),
                ample_margin: 5,
            },
            11,
        )
    }

    #[test]
    fn expected_outcomes_and_notifications_follow_the_category() {
        use CancellationReason as Reason;
        use NotificationKind as Kind;
        let cases = [
            (
                Category::Normal,
                Expected::Shipped,
                PaymentSent::Authorized,
                vec![Kind::OrderConfirmed, Kind::OrderShipped],
            ),
            (
                Category::PaymentFailure,
                Expected::Cancelled {
                    reason: Reason::PaymentFailed,
                },
                PaymentSent::Failed,
                vec![
                    Kind::OrderConfirmed,
                    Kind::PaymentFailed,
                    Kind::OrderCancelled,
                ],
            ),
            (
                Category::Fraud,
                Expected::Cancelled {
                    reason: Reason::FraudSuspected,
                },
                PaymentSent::Authorized,
                vec![Kind::OrderConfirmed, Kind::OrderCancelled],
            ),
            (
                Category::OutOfStock,
                Expected::Cancelled {
                    reason: Reason::OutOfStock,
                },
                PaymentSent::Authorized,
                vec![Kind::OrderConfirmed, Kind::OrderCancelled],
            ),
            (
                Category::MissingPayment,
                Expected::Cancelled {
                    reason: Reason::Timeout,
                },
                PaymentSent::NotSent,
                vec![Kind::OrderConfirmed, Kind::OrderCancelled],
            ),
            (
                Category::Scarce,
                Expected::ShippedOrOutOfStock,
                PaymentSent::Authorized,
                vec![Kind::OrderConfirmed],
            ),
        ];
        for (category, expected, payment, notifications) in cases {
            assert_eq!(category.expected(), expected, "{category:?}");
            assert_eq!(category.payment(), payment, "{category:?}");
            assert_eq!(
                expected_notifications(expected, payment),
                notifications,
                "{category:?}"
            );
        }
    }

    #[test]
    fn json_uses_the_documented_names_and_round_trips() {
        let restocks = BTreeMap::from([(
            "HOME-MUG-001".to_owned(),
            RestockTally {
                units: 100,
                restocks: 2,
            },
        )]);
        let summary = Summary::build(&plan(), Timestamp::from_micros(1_000), 200, &restocks);
        let text = serde_json::to_string(&summary).expect("serialises");
        for needle in [
            r#""outcome":"CANCELLED","reason":"PAYMENT_FAILED""#,
            r#""outcome":"SHIPPED_OR_OUT_OF_STOCK""#,
            r#""outcome":"SHIPPED""#,
            r#""payment":"NONE""#,
            r#""payment":"FAILED""#,
            r#""category":"missing_payment""#,
            r#""class":"discontinued""#,
            r#""expected_notifications":["ORDER_CONFIRMED","PAYMENT_FAILED","ORDER_CANCELLED"]"#,
            r#""started_at":1000"#,
        ] {
            assert!(text.contains(needle), "{needle} not in the summary");
        }
        let back: Summary = serde_json::from_str(&text).expect("deserialises");
        assert_eq!(back, summary);
        let mug = back.sku("HOME-MUG-001").expect("listed");
        assert_eq!((mug.restocked_units, mug.restocks), (100, 2));
    }

    #[test]
    fn counts_and_demand_cover_the_orders_sent_only() {
        let plan = plan();
        let full = Summary::build(&plan, Timestamp::from_micros(0), 200, &BTreeMap::new());
        assert_eq!(full.counts.total(), 200);
        assert!(!full.stopped_early);
        for category in Category::ALL {
            let expected = if category == Category::Normal {
                100
            } else {
                20
            };
            assert_eq!(full.counts.get(category), expected, "{category:?}");
        }

        let partial = Summary::build(&plan, Timestamp::from_micros(0), 50, &BTreeMap::new());
        assert!(partial.stopped_early);
        assert_eq!((partial.orders_planned, partial.orders_sent), (200, 50));
        assert_eq!(partial.counts.total(), 50);
        assert_eq!(partial.orders.len(), 50);
        assert_eq!(partial.orders[..], full.orders[..50]);
        let demand_sent: i64 = partial.skus.iter().map(|sku| sku.demand).sum();
        let ordered: i64 = partial
            .orders
            .iter()
            .flat_map(|order| &order.lines)
            .map(|line| i64::from(line.quantity))
            .sum();
        assert_eq!(demand_sent, ordered);
    }

    #[test]
    fn a_scarce_order_learns_its_last_notification_from_the_outcome() {
        let summary = Summary::build(&plan(), Timestamp::from_micros(0), 200, &BTreeMap::new());
        let scarce = summary
            .orders
            .iter()
            .find(|order| order.category == Category::Scarce)
            .expect("a scarce order");
        assert_eq!(
            scarce.notifications_for_outcome(true),
            vec![
                NotificationKind::OrderConfirmed,
                NotificationKind::OrderShipped
            ]
        );
        assert_eq!(
            scarce.notifications_for_outcome(false),
            vec![
                NotificationKind::OrderConfirmed,
                NotificationKind::OrderCancelled
            ]
        );
        let failed = summary
            .orders
            .iter()
            .find(|order| order.category == Category::PaymentFailure)
            .expect("a failed payment");
        assert_eq!(
            failed.notifications_for_outcome(false),
            failed.expected_notifications
        );
    }
}
