//! The run's plan: every order, payment answer and initial stock level, generated up front from
//! a seed, without I/O or the clock.
//!
//! The same settings and seed always give the same plan (ids included: they are drawn from the
//! seeded generator, not from `EventId::random`). Times in the plan are offsets from the run's
//! start, so the events themselves are built with [`PlannedOrder::order_placed`] and friends once
//! the start time is known; the same seed and start time give byte-identical events.
//!
//! Each order gets a [`Category`] from the mix, and the category's invariants hold by
//! construction (see [`crate::catalogue`] for the price bands that make them hold):
//! - ordinary orders (every category but fraud) come from established customers (accounts at
//!   least a year older than the run), bill and ship in one country, total under 50,000 minor
//!   units, and are spread round-robin over a customer pool so that nobody orders more than
//!   [`MAX_ORDERS_PER_CUSTOMER`] times;
//! - fraud-like orders come from a fresh customer whose account is created with the order,
//!   total at least 150,000 minor units, and bill in another country than they ship to;
//! - out-of-stock orders have one line of a discontinued SKU (never stocked), scarce orders one
//!   line of a scarce SKU (stocked at half the demand for it, never restocked); every other line
//!   is an everyday SKU, stocked above the run's whole demand ([`PlanSettings::ample_margin`]).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retail_events::common::{Address, Customer, DeliverySpeed, Money};
use retail_events::payments::{
    PaymentAuthorized, PaymentFailed, PaymentFailureReason, PaymentMethod,
};
use retail_events::storefront::{OrderLine, OrderPlaced};
use retail_events::warehouse::{StockAdjusted, StockAdjustmentReason};
use retail_events::{Envelope, Event, EventId, Timestamp};

use crate::catalogue::{
    self, COUNTRIES, CURRENCY, Country, DISCONTINUED, EVERYDAY, FAMILY_NAMES, GIVEN_NAMES,
    MAX_LINES, MAX_QUANTITY, PREMIUM, Product, SCARCE,
};
use crate::summary::{Category, PaymentSent, SkuClass};

/// No ordinary customer places more orders than this in one run; the fraud worker's velocity
/// rule fires above 5 orders in 10 minutes.
pub const MAX_ORDERS_PER_CUSTOMER: usize = 3;

/// `producer` of the storefront's events.
pub const STOREFRONT: &str = "storefront";
/// `producer` of the payment system's events.
pub const PAYMENTS: &str = "payments";
/// `producer` of the warehouse's events.
pub const WAREHOUSE: &str = "warehouse";
/// The one warehouse the simulated stock is in.
pub const WAREHOUSE_ID: &str = "wh-central-1";

/// Shortest account age of an established customer at the run's start: a year and a day.
const ESTABLISHED_MIN_AGE: Duration = Duration::from_secs(366 * 24 * 3600);
/// Account ages of established customers spread over this much more.
const ESTABLISHED_AGE_SPREAD: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// Share of orders with express delivery.
const EXPRESS_SHARE: f64 = 0.2;
/// Share of ordinary orders billed to another address in the same country.
const OTHER_BILLING_ADDRESS_SHARE: f64 = 0.1;

/// Shares of the order categories; normal orders take the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixRates {
    pub payment_failure: f64,
    pub fraud: f64,
    pub out_of_stock: f64,
    pub missing_payment: f64,
    pub scarce: f64,
}

/// Why a mix cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    /// One rate is not a number in [0, 1].
    #[error("--{flag} must be between 0 and 1, got {rate}")]
    OutOfRange { flag: &'static str, rate: f64 },
    /// The rates leave a negative share of normal orders.
    #[error(
        "the category rates must add up to at most 1 (normal orders take the rest), got {sum} \
         (--payment-failure-rate + --fraud-rate + --out-of-stock-rate + --missing-payment-rate \
         + --scarce-rate)"
    )]
    SumAboveOne { sum: f64 },
}

impl MixRates {
    /// The rates by flag name, for validation messages.
    fn by_flag(&self) -> [(&'static str, Category, f64); 5] {
        [
            (
                "payment-failure-rate",
                Category::PaymentFailure,
                self.payment_failure,
            ),
            ("fraud-rate", Category::Fraud, self.fraud),
            ("out-of-stock-rate", Category::OutOfStock, self.out_of_stock),
            (
                "missing-payment-rate",
                Category::MissingPayment,
                self.missing_payment,
            ),
            ("scarce-rate", Category::Scarce, self.scarce),
        ]
    }

    /// Checks every rate is in [0, 1] and they add up to at most 1.
    pub fn validate(&self) -> Result<(), MixError> {
        for (flag, _, rate) in self.by_flag() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(MixError::OutOfRange { flag, rate });
            }
        }
        let sum: f64 = self.by_flag().iter().map(|(_, _, rate)| rate).sum();
        // A little slack for decimal rates that add up to exactly 1 on paper.
        if sum > 1.0 + 1e-9 {
            return Err(MixError::SumAboveOne { sum });
        }
        Ok(())
    }

    /// How many of `orders` orders each category gets: the rates' shares rounded down, the
    /// orders left over going to the largest remainders, so the counts add up to `orders`.
    pub fn quotas(&self, orders: usize) -> BTreeMap<Category, usize> {
        let special: f64 = self.by_flag().iter().map(|(_, _, rate)| rate).sum();
        let mut shares: Vec<(Category, f64)> = vec![(Category::Normal, (1.0 - special).max(0.0))];
        shares.extend(
            self.by_flag()
                .iter()
                .map(|(_, category, rate)| (*category, *rate)),
        );
        let exact: Vec<(Category, f64)> = shares
            .iter()
            .map(|(category, share)| (*category, share * orders as f64))
            .collect();
        let mut quotas: BTreeMap<Category, usize> = exact
            .iter()
            .map(|(category, count)| (*category, count.floor() as usize))
            .collect();
        let mut by_remainder = exact.clone();
        // Stable sort: ties keep the category order, so the result is deterministic.
        by_remainder.sort_by(|(_, a), (_, b)| (b - b.floor()).total_cmp(&(a - a.floor())));
        let assigned: usize = quotas.values().sum();
        for (category, _) in by_remainder
            .iter()
            .cycle()
            .take(orders.saturating_sub(assigned))
        {
            *quotas.entry(*category).or_default() += 1;
        }
        quotas
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// Orders in the run.
    pub orders: usize,
    /// Orders per second; order `i` is due `i / rate` seconds after the start.
    pub rate_per_second: f64,
    /// Category shares.
    pub mix: MixRates,
    /// Shortest delay between an order and its payment answer.
    pub payment_delay_min: Duration,
    /// Longest delay between an order and its payment answer.
    pub payment_delay_max: Duration,
    /// Units of every ample SKU beyond the run's whole demand for it (at least 1).
    pub ample_margin: u32,
}

/// When an account was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerSince {
    /// This long before the run's start.
    BeforeStart(Duration),
    /// With the order (a brand-new customer).
    AtOrder,
}

/// A customer as the storefront reports it, with the account's creation time left relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCustomer {
    pub customer_id: String,
    pub email: String,
    pub full_name: String,
    /// Account creation, relative to the run's start or to the order.
    pub since: CustomerSince,
    /// Where the customer lives; ordinary orders ship and bill here.
    pub home: Address,
}

/// The payment system's answer to one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentAnswer {
    Authorized {
        method: PaymentMethod,
        authorization_code: String,
    },
    Failed {
        reason: PaymentFailureReason,
        message: String,
    },
}

/// A payment event to send after its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPayment {
    /// After the order's due time.
    pub delay: Duration,
    pub event_id: EventId,
    pub payment_id: String,
    pub answer: PaymentAnswer,
}

/// One order and the payment system's answer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOrder {
    /// How the saga must end it.
    pub category: Category,
    /// When it is due, after the run's start.
    pub offset: Duration,
    pub event_id: EventId,
    pub order_id: String,
    pub customer: PlannedCustomer,
    pub lines: Vec<OrderLine>,
    pub shipping_address: Address,
    pub billing_address: Address,
    pub delivery_speed: DeliverySpeed,
    /// `None` for orders whose payment never comes.
    pub payment: Option<PlannedPayment>,
}

impl PlannedOrder {
    /// When the order is placed, for a run started at `start`.
    pub fn placed_at(&self, start: Timestamp) -> Timestamp {
        after(start, self.offset)
    }

    /// Sum of quantity times unit price.
    pub fn total(&self) -> Money {
        Money {
            amount_minor: self
                .lines
                .iter()
                .map(|line| i64::from(line.quantity) * line.unit_price.amount_minor)
                .sum(),
            currency: CURRENCY.to_owned(),
        }
    }

    /// The account's creation time, for a run started at `start`.
    pub fn customer_since(&self, start: Timestamp) -> Timestamp {
        match self.customer.since {
            CustomerSince::BeforeStart(age) => before(start, age),
            CustomerSince::AtOrder => self.placed_at(start),
        }
    }

    /// The storefront's event, for a run started at `start`.
    pub fn order_placed(&self, start: Timestamp) -> OrderPlaced {
        let mut envelope = Envelope::originating::<OrderPlaced>(
            self.order_id.clone(),
            STOREFRONT,
            self.placed_at(start),
        );
        envelope.event_id = self.event_id;
        OrderPlaced {
            envelope,
            order_id: self.order_id.clone(),
            customer: Customer {
                customer_id: self.customer.customer_id.clone(),
                email: self.customer.email.clone(),
                full_name: self.customer.full_name.clone(),
                customer_since: self.customer_since(start),
            },
            lines: self.lines.clone(),
            order_total: self.total(),
            shipping_address: self.shipping_address.clone(),
            billing_address: self.billing_address.clone(),
            delivery_speed: self.delivery_speed,
        }
    }

    /// When the payment answer is due after the run's start, if one comes.
    pub fn payment_offset(&self) -> Option<Duration> {
        self.payment
            .as_ref()
            .map(|payment| self.offset.saturating_add(payment.delay))
    }

    /// The payment system's event, for a run started at `start`; `None` if no answer comes.
    pub fn payment_event(&self, start: Timestamp) -> Option<Event> {
        let payment = self.payment.as_ref()?;
        let at = after(start, self.offset.saturating_add(payment.delay));
        Some(match &payment.answer {
            PaymentAnswer::Authorized {
                method,
                authorization_code,
            } => {
                let mut envelope =
                    Envelope::originating::<PaymentAuthorized>(self.order_id.clone(), PAYMENTS, at);
                envelope.event_id = payment.event_id;
                Event::PaymentAuthorized(PaymentAuthorized {
                    envelope,
                    order_id: self.order_id.clone(),
                    payment_id: payment.payment_id.clone(),
                    amount: self.total(),
                    method: *method,
                    authorization_code: authorization_code.clone(),
                })
            }
            PaymentAnswer::Failed { reason, message } => {
                let mut envelope =
                    Envelope::originating::<PaymentFailed>(self.order_id.clone(), PAYMENTS, at);
                envelope.event_id = payment.event_id;
                Event::PaymentFailed(PaymentFailed {
                    envelope,
                    order_id: self.order_id.clone(),
                    payment_id: payment.payment_id.clone(),
                    amount: self.total(),
                    reason: *reason,
                    message: Some(message.clone()),
                })
            }
        })
    }

    /// Which payment event is sent for the order.
    pub fn payment_sent(&self) -> PaymentSent {
        match &self.payment {
            None => PaymentSent::NotSent,
            Some(PlannedPayment {
                answer: PaymentAnswer::Authorized { .. },
                ..
            }) => PaymentSent::Authorized,
            Some(PlannedPayment {
                answer: PaymentAnswer::Failed { .. },
                ..
            }) => PaymentSent::Failed,
        }
    }
}

/// One SKU and its stock at the start of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSku {
    pub product: Product,
    pub class: SkuClass,
    /// Units the warehouse reports before the first order.
    pub initial_stock: i32,
    /// Units the run's orders ask for.
    pub demand: i64,
    /// Id of the initial `StockAdjusted` and its adjustment.
    pub event_id: EventId,
}

impl PlannedSku {
    /// The warehouse's initial `StockAdjusted` (RESTOCK), or `None` for a SKU with no stock:
    /// a zero adjustment is not a movement, and inventory treats a SKU it never heard of as
    /// having none.
    pub fn initial_adjustment(&self, at: Timestamp) -> Option<StockAdjusted> {
        if self.initial_stock <= 0 {
            return None;
        }
        let adjustment_id = self.event_id.to_string();
        let mut envelope =
            Envelope::originating::<StockAdjusted>(adjustment_id.clone(), WAREHOUSE, at);
        envelope.event_id = self.event_id;
        Some(StockAdjusted {
            envelope,
            adjustment_id,
            warehouse_id: WAREHOUSE_ID.to_owned(),
            sku: self.product.sku.to_owned(),
            quantity_delta: self.initial_stock,
            reason: StockAdjustmentReason::Restock,
        })
    }
}

/// What the run sends at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// The order at this index of [`Plan::orders`].
    Order(usize),
    /// The payment answer to the order at this index.
    Payment(usize),
}

/// An action and when it is due after the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Step {
    pub at: Duration,
    pub action: Action,
}

/// Everything a run sends, generated from a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub seed: u64,
    /// In the order they are placed.
    pub orders: Vec<PlannedOrder>,
    /// Every SKU, ample ones first.
    pub skus: Vec<PlannedSku>,
}

impl Plan {
    /// Orders and payments in the order they are due (an order before any payment due at the
    /// same moment, so an answer never precedes its order).
    pub fn schedule(&self) -> Vec<Step> {
        let mut steps: Vec<Step> = Vec::with_capacity(self.orders.len() * 2);
        for (index, order) in self.orders.iter().enumerate() {
            steps.push(Step {
                at: order.offset,
                action: Action::Order(index),
            });
            if let Some(at) = order.payment_offset() {
                steps.push(Step {
                    at,
                    action: Action::Payment(index),
                });
            }
        }
        steps.sort();
        steps
    }

    /// The SKUs the warehouse restocks when inventory reports them low.
    pub fn restockable_skus(&self) -> impl Iterator<Item = &str> {
        self.skus
            .iter()
            .filter(|sku| sku.class == SkuClass::Ample)
            .map(|sku| sku.product.sku)
    }
}

/// Generates the plan of a run.
pub fn generate(settings: &PlanSettings, seed: u64) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let quotas = settings.mix.quotas(settings.orders);
    let mut categories: Vec<Category> = quotas
        .iter()
        .flat_map(|(category, count)| std::iter::repeat_n(*category, *count))
        .collect();
    categories.shuffle(&mut rng);

    let ordinary_orders = settings.orders - quotas.get(&Category::Fraud).copied().unwrap_or(0);
    let pool: Vec<PlannedCustomer> = (0..ordinary_orders.div_ceil(MAX_ORDERS_PER_CUSTOMER))
        .map(|_| {
            let age = ESTABLISHED_MIN_AGE + random_duration(&mut rng, ESTABLISHED_AGE_SPREAD);
            let country = pick(&mut rng, COUNTRIES);
            new_customer(&mut rng, country, CustomerSince::BeforeStart(age))
        })
        .collect();
    let scarce_orders = quotas.get(&Category::Scarce).copied().unwrap_or(0);
    // About four orders per scarce SKU, so they compete for its units.
    let scarce_skus = scarce_orders.div_ceil(4).min(SCARCE.len());

    let mut orders = Vec::with_capacity(settings.orders);
    let mut ordinary_seen = 0;
    let mut scarce_seen = 0;
    for (index, category) in categories.into_iter().enumerate() {
        let offset = Duration::from_secs_f64(index as f64 / settings.rate_per_second);
        let order = match category {
            Category::Fraud => fraud_order(&mut rng, offset, settings),
            _ => {
                let customer = pool[ordinary_seen % pool.len()].clone();
                ordinary_seen += 1;
                let special = match category {
                    Category::OutOfStock => Some(pick(&mut rng, DISCONTINUED)),
                    Category::Scarce => {
                        let product = &SCARCE[scarce_seen % scarce_skus];
                        scarce_seen += 1;
                        Some(product)
                    }
                    _ => None,
                };
                ordinary_order(&mut rng, category, offset, customer, special, settings)
            }
        };
        orders.push(order);
    }

    let skus = stock(&mut rng, &orders, scarce_skus, settings.ample_margin);
    Plan { seed, orders, skus }
}

/// Initial stock of every SKU from the orders' demand.
fn stock(
    rng: &mut ChaCha8Rng,
    orders: &[PlannedOrder],
    scarce_skus: usize,
    ample_margin: u32,
) -> Vec<PlannedSku> {
    let mut demand: BTreeMap<&str, i64> = BTreeMap::new();
    for line in orders.iter().flat_map(|order| &order.lines) {
        *demand.entry(line.sku.as_str()).or_default() += i64::from(line.quantity);
    }
    let demand_of = |product: &Product| demand.get(product.sku).copied().unwrap_or_default();
    let classes = EVERYDAY
        .iter()
        .chain(PREMIUM)
        .map(|product| (product, SkuClass::Ample))
        .chain(
            SCARCE[..scarce_skus]
                .iter()
                .map(|product| (product, SkuClass::Scarce)),
        )
        .chain(
            DISCONTINUED
                .iter()
                .map(|product| (product, SkuClass::Discontinued)),
        );
    classes
        .map(|(product, class)| {
            let demand = demand_of(product);
            let initial = match class {
                SkuClass::Ample => demand + i64::from(ample_margin.max(1)),
                SkuClass::Scarce => demand / 2,
                SkuClass::Discontinued => 0,
            };
            PlannedSku {
                product: *product,
                class,
                initial_stock: i32::try_from(initial).unwrap_or(i32::MAX),
                demand,
                event_id: random_id(rng),
            }
        })
        .collect()
}

/// An order from an established customer: everyday products, plus one `special` line (a
/// discontinued or scarce product) if given.
fn ordinary_order(
    rng: &mut ChaCha8Rng,
    category: Category,
    offset: Duration,
    customer: PlannedCustomer,
    special: Option<&Product>,
    settings: &PlanSettings,
) -> PlannedOrder {
    let line_count = rng.random_range(1..=MAX_LINES);
    let everyday = line_count - usize::from(special.is_some());
    let mut products: Vec<&Product> = EVERYDAY.choose_multiple(rng, everyday).collect();
    if let Some(product) = special {
        let position = rng.random_range(0..=products.len());
        products.insert(position, product);
    }
    let lines = order_lines(rng, &products, MAX_QUANTITY);
    let shipping_address = customer.home.clone();
    let billing_address = if rng.random_bool(OTHER_BILLING_ADDRESS_SHARE) {
        let country = COUNTRIES
            .iter()
            .find(|country| country.code == shipping_address.country_code)
            .unwrap_or(&COUNTRIES[0]);
        address(rng, country, &customer.full_name)
    } else {
        shipping_address.clone()
    };
    finish_order(
        rng,
        category,
        offset,
        customer,
        lines,
        shipping_address,
        billing_address,
        settings,
    )
}

/// An order with every feature the fraud worker scores: a new account, a premium product, and
/// billing in another country than shipping.
fn fraud_order(rng: &mut ChaCha8Rng, offset: Duration, settings: &PlanSettings) -> PlannedOrder {
    let billing_country = pick(rng, COUNTRIES);
    let shipping_country = loop {
        let country = pick(rng, COUNTRIES);
        if country.code != billing_country.code {
            break country;
        }
    };
    let customer = new_customer(rng, billing_country, CustomerSince::AtOrder);
    let line_count = rng.random_range(1..MAX_LINES);
    let mut products: Vec<&Product> = EVERYDAY.choose_multiple(rng, line_count - 1).collect();
    let premium = pick(rng, PREMIUM);
    let position = rng.random_range(0..=products.len());
    products.insert(position, premium);
    let lines = order_lines(rng, &products, 2);
    let recipient = full_name(rng);
    let shipping_address = address(rng, shipping_country, &recipient);
    let billing_address = customer.home.clone();
    finish_order(
        rng,
        Category::Fraud,
        offset,
        customer,
        lines,
        shipping_address,
        billing_address,
        settings,
    )
}

#[expect(
    clippy::too_many_arguments,
    reason = "one private constructor shared by the two kinds of order; a struct for its \
              arguments would be the order itself"
)]
fn finish_order(
    rng: &mut ChaCha8Rng,
    category: Category,
    offset: Duration,
    customer: PlannedCustomer,
    lines: Vec<OrderLine>,
    shipping_address: Address,
    billing_address: Address,
    settings: &PlanSettings,
) -> PlannedOrder {
    let delivery_speed = if rng.random_bool(EXPRESS_SHARE) {
        DeliverySpeed::Express
    } else {
        DeliverySpeed::Standard
    };
    let event_id = random_id(rng);
    let order_id = format!("ord-{}", random_id(rng));
    let answer = match category.payment() {
        PaymentSent::Authorized => Some(PaymentAnswer::Authorized {
            method: payment_method(rng),
            authorization_code: code(rng, 6),
        }),
        PaymentSent::Failed => {
            let (reason, message) = *pick(
                rng,
                &[
                    (
                        PaymentFailureReason::Declined,
                        "card declined by the issuer",
                    ),
                    (
                        PaymentFailureReason::InsufficientFunds,
                        "insufficient funds on the account",
                    ),
                    (
                        PaymentFailureReason::ExpiredInstrument,
                        "the card has expired",
                    ),
                    (
                        PaymentFailureReason::ProviderError,
                        "the payment provider did not answer in time",
                    ),
                ],
            );
            Some(PaymentAnswer::Failed {
                reason,
                message: message.to_owned(),
            })
        }
        PaymentSent::NotSent => None,
    };
    let payment = answer.map(|answer| {
        let spread = settings
            .payment_delay_max
            .saturating_sub(settings.payment_delay_min);
        PlannedPayment {
            delay: settings.payment_delay_min + random_duration(rng, spread),
            event_id: random_id(rng),
            payment_id: format!("pay-{}", code(rng, 16).to_lowercase()),
            answer,
        }
    });
    PlannedOrder {
        category,
        offset,
        event_id,
        order_id,
        customer,
        lines,
        shipping_address,
        billing_address,
        delivery_speed,
        payment,
    }
}

/// Numbered lines of these products, 1 to `max_quantity` units each (mostly 1).
fn order_lines(rng: &mut ChaCha8Rng, products: &[&Product], max_quantity: i32) -> Vec<OrderLine> {
    products
        .iter()
        .zip(1..)
        .map(|(product, line_number)| {
            let draw = rng.random_range(0..10);
            let quantity = match draw {
                0..6 => 1,
                6..9 => 2,
                _ => 3,
            };
            OrderLine {
                line_number,
                sku: product.sku.to_owned(),
                product_name: product.name.to_owned(),
                quantity: quantity.min(max_quantity),
                unit_price: Money {
                    amount_minor: product.price_minor,
                    currency: catalogue::CURRENCY.to_owned(),
                },
                unit_weight_grams: product.weight_grams,
            }
        })
        .collect()
}

fn new_customer(rng: &mut ChaCha8Rng, country: &Country, since: CustomerSince) -> PlannedCustomer {
    let given = *pick(rng, GIVEN_NAMES);
    let family = *pick(rng, FAMILY_NAMES);
    let full_name = format!("{given} {family}");
    let account = code(rng, 12).to_lowercase();
    let email = format!(
        "{}.{}.{}@example.com",
        given.to_lowercase(),
        family.to_lowercase().replace(' ', ""),
        account.chars().take(4).collect::<String>()
    );
    let customer_id = format!("cus-{account}");
    let home = address(rng, country, &full_name);
    PlannedCustomer {
        customer_id,
        email,
        full_name,
        since,
        home,
    }
}

fn full_name(rng: &mut ChaCha8Rng) -> String {
    format!("{} {}", pick(rng, GIVEN_NAMES), pick(rng, FAMILY_NAMES))
}

fn address(rng: &mut ChaCha8Rng, country: &Country, recipient: &str) -> Address {
    let city = pick(rng, country.cities);
    let street = pick(rng, country.streets);
    let number = rng.random_range(1..=140);
    let line1 = if country.number_after_street {
        format!("{street} {number}")
    } else {
        format!("{number} {street}")
    };
    let line2 = rng
        .random_bool(0.15)
        .then(|| format!("Apartment {}", rng.random_range(1..=60)));
    Address {
        recipient_name: recipient.to_owned(),
        line1,
        line2,
        city: city.name.to_owned(),
        postal_code: city.postal_code.to_owned(),
        region: None,
        country_code: country.code.to_owned(),
    }
}

fn payment_method(rng: &mut ChaCha8Rng) -> PaymentMethod {
    match rng.random_range(0..20) {
        0..12 => PaymentMethod::Card,
        12..17 => PaymentMethod::Wallet,
        17..19 => PaymentMethod::Invoice,
        _ => PaymentMethod::BankTransfer,
    }
}

/// `length` random characters from `A-Z0-9`.
fn code(rng: &mut ChaCha8Rng, length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..length)
        .map(|_| char::from(*pick(rng, ALPHABET)))
        .collect()
}

/// A version-4 UUID from the seeded generator.
fn random_id(rng: &mut ChaCha8Rng) -> EventId {
    let bytes = rng.random::<u128>().to_le_bytes();
    EventId::from(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Uniform in [0, spread], in whole microseconds.
fn random_duration(rng: &mut ChaCha8Rng, spread: Duration) -> Duration {
    let micros = u64::try_from(spread.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rng.random_range(0..=micros))
}

/// One element of a non-empty table of this module's fixed data.
fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    debug_assert!(!items.is_empty(), "the catalogue's tables are not empty");
    &items[rng.random_range(0..items.len())]
}

fn after(start: Timestamp, offset: Duration) -> Timestamp {
    let micros = i64::try_from(offset.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_micros(start.as_micros().saturating_add(micros))
}

fn before(start: Timestamp, age: Duration) -> Timestamp {
    let micros = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_micros(start.as_micros().saturating_sub(micros))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use retail_codec::{Codec, RegisteredEvent};
    use retail_events::EVENT_TYPES;

    use super::*;

    const YEAR_MICROS: i64 = 365 * 24 * 3600 * 1_000_000;

    fn settings(orders: usize) -> PlanSettings {
        PlanSettings {
            orders,
            rate_per_second: 20.0,
            mix: MixRates {
                payment_failure: 0.05,
                fraud: 0.03,
                out_of_stock: 0.03,
                missing_payment: 0.02,
                scarce: 0.05,
            },
            payment_delay_min: Duration::from_millis(20),
            payment_delay_max: Duration::from_millis(200),
            ample_margin: 25,
        }
    }

    /// A mix with plenty of every category, so each invariant is checked on many orders.
    fn busy_settings() -> PlanSettings {
        PlanSettings {
            mix: MixRates {
                payment_failure: 0.1,
                fraud: 0.15,
                out_of_stock: 0.1,
                missing_payment: 0.1,
                scarce: 0.15,
            },
            ..settings(600)
        }
    }

    fn start() -> Timestamp {
        Timestamp::from_micros(1_750_000_000_000_000)
    }

    fn of_class(skus: &[&'static Product], sku: &str) -> bool {
        skus.iter().any(|product| product.sku == sku)
    }

    fn products(table: &'static [Product]) -> Vec<&'static Product> {
        table.iter().collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_orders_and_events() {
        let first = generate(&settings(300), 42);
        let second = generate(&settings(300), 42);
        assert_eq!(first, second);
        for (a, b) in first.orders.iter().zip(&second.orders) {
            assert_eq!(a.order_placed(start()), b.order_placed(start()));
            assert_eq!(a.payment_event(start()), b.payment_event(start()));
        }
        let other = generate(&settings(300), 43);
        assert_ne!(first.orders[0].order_id, other.orders[0].order_id);
        assert_ne!(
            first
                .orders
                .iter()
                .map(|order| order.category)
                .collect::<Vec<_>>(),
            other
                .orders
                .iter()
                .map(|order| order.category)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn quotas_follow_the_rates_and_add_up() {
        let quotas = settings(100).mix.quotas(100);
        let expected = BTreeMap::from([
            (Category::Normal, 82),
            (Category::PaymentFailure, 5),
            (Category::Fraud, 3),
            (Category::OutOfStock, 3),
            (Category::MissingPayment, 2),
            (Category::Scarce, 5),
        ]);
        assert_eq!(quotas, expected);

        for orders in [0, 1, 7, 49, 50, 333, 1_000] {
            let mix = settings(orders).mix;
            let quotas = mix.quotas(orders);
            assert_eq!(quotas.values().sum::<usize>(), orders, "{orders} orders");
            for (flag, category, rate) in mix.by_flag() {
                let count = quotas.get(&category).copied().unwrap_or_default() as f64;
                assert!(
                    (count - rate * orders as f64).abs() <= 1.0,
                    "{flag}: {count} of {orders}"
                );
            }
        }

        let all_fraud = MixRates {
            payment_failure: 0.0,
            fraud: 1.0,
            out_of_stock: 0.0,
            missing_payment: 0.0,
            scarce: 0.0,
        };
        assert_eq!(all_fraud.quotas(10).get(&Category::Fraud), Some(&10));
        assert_eq!(all_fraud.quotas(10).get(&Category::Normal), Some(&0));
    }

    #[test]
    fn generated_categories_match_the_quotas() {
        let settings = busy_settings();
        let plan = generate(&settings, 5);
        let mut counts: BTreeMap<Category, usize> = BTreeMap::new();
        for order in &plan.orders {
            *counts.entry(order.category).or_default() += 1;
        }
        counts.retain(|_, count| *count > 0);
        let mut quotas = settings.mix.quotas(settings.orders);
        quotas.retain(|_, count| *count > 0);
        assert_eq!(counts, quotas);
        // Shuffled, not in blocks: the first 100 orders hold several categories.
        let early: BTreeSet<Category> = plan.orders[..100]
            .iter()
            .map(|order| order.category)
            .collect();
        assert!(early.len() >= 4, "{early:?}");
    }

    #[test]
    fn mix_validation_names_the_flag() {
        let mut mix = settings(1).mix;
        assert_eq!(mix.validate(), Ok(()));
        mix.fraud = 1.5;
        assert_eq!(
            mix.validate(),
            Err(MixError::OutOfRange {
                flag: "fraud-rate",
                rate: 1.5
            })
        );
        mix.fraud = f64::NAN;
        assert!(matches!(
            mix.validate(),
            Err(MixError::OutOfRange {
                flag: "fraud-rate",
                ..
            })
        ));
        mix.fraud = 0.5;
        mix.scarce = 0.5;
        let error = mix.validate().expect_err("sum above one");
        assert!(matches!(error, MixError::SumAboveOne { sum } if sum > 1.0));
        assert!(error.to_string().contains("at most 1"), "{error}");
        // Exactly 1 on paper is accepted despite rounding.
        let exact = MixRates {
            payment_failure: 0.1,
            fraud: 0.2,
            out_of_stock: 0.3,
            missing_payment: 0.3,
            scarce: 0.1,
        };
        assert_eq!(exact.validate(), Ok(()));
    }

    #[test]
    fn ordinary_orders_have_none_of_the_fraud_features() {
        let plan = generate(&busy_settings(), 9);
        let everyday = products(EVERYDAY);
        let ordinary: Vec<&PlannedOrder> = plan
            .orders
            .iter()
            .filter(|order| order.category != Category::Fraud)
            .collect();
        assert!(ordinary.len() > 400);
        for order in ordinary {
            let placed = order.order_placed(start());
            let age = placed.envelope.occurred_at.as_micros()
                - placed.customer.customer_since.as_micros();
            assert!(age >= YEAR_MICROS, "{}: account age {age}", order.order_id);
            assert_eq!(
                placed.billing_address.country_code, placed.shipping_address.country_code,
                "{}",
                order.order_id
            );
            assert!(placed.order_total.amount_minor < 50_000, "{placed:?}");
            let everyday_lines = placed
                .lines
                .iter()
                .filter(|line| of_class(&everyday, &line.sku))
                .count();
            let special_lines = match order.category {
                Category::OutOfStock | Category::Scarce => 1,
                _ => 0,
            };
            assert_eq!(
                everyday_lines + special_lines,
                placed.lines.len(),
                "{placed:?}"
            );
        }
    }

    #[test]
    fn fraud_like_orders_have_every_fraud_feature() {
        let plan = generate(&busy_settings(), 9);
        let premium = products(PREMIUM);
        let ordinary_customers: BTreeSet<&str> = plan
            .orders
            .iter()
            .filter(|order| order.category != Category::Fraud)
            .map(|order| order.customer.customer_id.as_str())
            .collect();
        let fraud: Vec<&PlannedOrder> = plan
            .orders
            .iter()
            .filter(|order| order.category == Category::Fraud)
            .collect();
        assert_eq!(fraud.len(), 90);
        let mut fraud_customers = BTreeSet::new();
        for order in fraud {
            let placed = order.order_placed(start());
            assert_eq!(
                placed.customer.customer_since, placed.envelope.occurred_at,
                "a brand-new account"
            );
            assert!(placed.order_total.amount_minor >= 150_000, "{placed:?}");
            assert_ne!(
                placed.billing_address.country_code,
                placed.shipping_address.country_code
            );
            let premium_lines = placed
                .lines
                .iter()
                .filter(|line| of_class(&premium, &line.sku))
                .count();
            assert_eq!(premium_lines, 1);
            assert!(!ordinary_customers.contains(placed.customer.customer_id.as_str()));
            assert!(
                fraud_customers.insert(placed.customer.customer_id.clone()),
                "a fresh customer per fraud-like order"
            );
        }
    }

    #[test]
    fn special_lines_match_the_category() {
        let plan = generate(&busy_settings(), 21);
        let (discontinued, scarce, premium) =
            (products(DISCONTINUED), products(SCARCE), products(PREMIUM));
        for order in &plan.orders {
            let count = |table: &[&'static Product]| {
                order
                    .lines
                    .iter()
                    .filter(|line| of_class(table, &line.sku))
                    .count()
            };
            let expected = match order.category {
                Category::OutOfStock => (1, 0, 0),
                Category::Scarce => (0, 1, 0),
                Category::Fraud => (0, 0, 1),
                _ => (0, 0, 0),
            };
            assert_eq!(
                (count(&discontinued), count(&scarce), count(&premium)),
                expected,
                "{:?} {:?}",
                order.category,
                order.lines
            );
        }
    }

    #[test]
    fn lines_are_numbered_distinct_and_small() {
        let plan = generate(&busy_settings(), 3);
        let mut line_counts = BTreeSet::new();
        let mut quantities = BTreeSet::new();
        let mut express = 0;
        for order in &plan.orders {
            let placed = order.order_placed(start());
            assert!((1..=MAX_LINES).contains(&placed.lines.len()));
            line_counts.insert(placed.lines.len());
            let skus: BTreeSet<&str> = placed.lines.iter().map(|line| line.sku.as_str()).collect();
            assert_eq!(
                skus.len(),
                placed.lines.len(),
                "SKUs unique within an order"
            );
            for (line, number) in placed.lines.iter().zip(1..) {
                assert_eq!(line.line_number, number);
                assert!((1..=MAX_QUANTITY).contains(&line.quantity));
                quantities.insert(line.quantity);
                assert_eq!(line.unit_price.currency, "EUR");
                assert!(line.unit_weight_grams > 0);
            }
            let total: i64 = placed
                .lines
                .iter()
                .map(|line| i64::from(line.quantity) * line.unit_price.amount_minor)
                .sum();
            assert_eq!(placed.order_total.amount_minor, total);
            assert_eq!(placed.order_total.currency, "EUR");
            if placed.delivery_speed == DeliverySpeed::Express {
                express += 1;
            } else {
                assert_eq!(placed.delivery_speed, DeliverySpeed::Standard);
            }
        }
        assert_eq!(line_counts, BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(quantities, BTreeSet::from([1, 2, 3]));
        assert!((60..=180).contains(&express), "{express} of 600 express");
    }

    #[test]
    fn no_ordinary_customer_orders_more_than_three_times() {
        for orders in [1, 2, 3, 4, 10, 100, 1_000] {
            let plan = generate(&settings(orders), 77);
            let mut per_customer: HashMap<&str, usize> = HashMap::new();
            for order in &plan.orders {
                *per_customer
                    .entry(order.customer.customer_id.as_str())
                    .or_default() += 1;
            }
            let most = per_customer.values().copied().max().unwrap_or_default();
            assert!(most <= MAX_ORDERS_PER_CUSTOMER, "{orders} orders: {most}");
        }
        // Customers do come back: a 100-order run has repeat customers.
        let plan = generate(&settings(100), 77);
        let distinct: BTreeSet<&str> = plan
            .orders
            .iter()
            .map(|order| order.customer.customer_id.as_str())
            .collect();
        assert!(distinct.len() < 100, "{}", distinct.len());
    }

    #[test]
    fn stock_classes_hold_against_the_demand() {
        for seed in 0..20 {
            let plan = generate(&busy_settings(), seed);
            let mut demand: BTreeMap<&str, i64> = BTreeMap::new();
            for line in plan.orders.iter().flat_map(|order| &order.lines) {
                *demand.entry(line.sku.as_str()).or_default() += i64::from(line.quantity);
            }
            let listed: BTreeSet<&str> = plan.skus.iter().map(|sku| sku.product.sku).collect();
            assert!(
                demand.keys().all(|sku| listed.contains(sku)),
                "every ordered SKU is listed"
            );
            let mut scarce = 0;
            for sku in &plan.skus {
                let ordered = demand.get(sku.product.sku).copied().unwrap_or_default();
                assert_eq!(sku.demand, ordered);
                let initial = i64::from(sku.initial_stock);
                let adjustment = sku.initial_adjustment(start());
                match sku.class {
                    SkuClass::Ample => {
                        assert_eq!(initial, ordered + 25, "{}", sku.product.sku);
                        let adjustment = adjustment.expect("ample SKUs are stocked");
                        assert_eq!(adjustment.quantity_delta, sku.initial_stock);
                        assert_eq!(adjustment.reason, StockAdjustmentReason::Restock);
                        assert_eq!(adjustment.sku, sku.product.sku);
                        assert_eq!(adjustment.envelope.correlation_id, adjustment.adjustment_id);
                        assert_eq!(adjustment.envelope.producer, "warehouse");
                    }
                    SkuClass::Scarce => {
                        scarce += 1;
                        assert!(ordered > 0 && initial < ordered, "{sku:?}");
                    }
                    SkuClass::Discontinued => {
                        assert_eq!(initial, 0);
                        assert_eq!(adjustment, None);
                    }
                }
            }
            assert!(scarce >= 1);
            let restockable: BTreeSet<&str> = plan.restockable_skus().collect();
            assert_eq!(restockable.len(), EVERYDAY.len() + PREMIUM.len());
            assert!(SCARCE.iter().all(|p| !restockable.contains(p.sku)));
            assert!(DISCONTINUED.iter().all(|p| !restockable.contains(p.sku)));
        }
    }

    #[test]
    fn without_scarce_orders_there_are_no_scarce_skus() {
        let mut settings = settings(50);
        settings.mix.scarce = 0.0;
        let plan = generate(&settings, 1);
        assert!(plan.skus.iter().all(|sku| sku.class != SkuClass::Scarce));
    }

    #[test]
    fn payments_answer_by_category_within_the_delay() {
        let plan = generate(&busy_settings(), 13);
        for order in &plan.orders {
            let placed = order.order_placed(start());
            assert_eq!(placed.envelope.correlation_id, order.order_id);
            assert_eq!(placed.envelope.producer, "storefront");
            assert_eq!(placed.envelope.causation_id, None);
            let payment = order.payment_event(start());
            match (order.category, payment) {
                (Category::MissingPayment, None) => {}
                (Category::PaymentFailure, Some(Event::PaymentFailed(failed))) => {
                    assert_eq!(failed.order_id, order.order_id);
                    assert_eq!(failed.amount, placed.order_total);
                    assert!(failed.message.is_some());
                    assert_ne!(failed.reason, PaymentFailureReason::Unknown);
                    check_payment_envelope(&failed.envelope, &placed);
                }
                (
                    Category::Normal | Category::Fraud | Category::OutOfStock | Category::Scarce,
                    Some(Event::PaymentAuthorized(authorized)),
                ) => {
                    assert_eq!(authorized.order_id, order.order_id);
                    assert_eq!(authorized.amount, placed.order_total);
                    assert_eq!(authorized.authorization_code.len(), 6);
                    assert_ne!(authorized.method, PaymentMethod::Unknown);
                    check_payment_envelope(&authorized.envelope, &placed);
                }
                (category, payment) => panic!("{category:?} answered with {payment:?}"),
            }
        }
    }

    fn check_payment_envelope(envelope: &Envelope, order: &OrderPlaced) {
        assert_eq!(envelope.correlation_id, order.order_id);
        assert_eq!(envelope.producer, "payments");
        let delay = envelope.occurred_at.as_micros() - order.envelope.occurred_at.as_micros();
        assert!((20_000..=200_000).contains(&delay), "delay {delay} us");
    }

    #[test]
    fn the_schedule_paces_orders_and_follows_each_with_its_payment() {
        let plan = generate(&settings(200), 4);
        let schedule = plan.schedule();
        assert!(schedule.windows(2).all(|pair| pair[0].at <= pair[1].at));
        let mut order_at = BTreeMap::new();
        for step in &schedule {
            match step.action {
                Action::Order(index) => {
                    // 20 orders per second: order i is due at i * 50 ms, not after the previous
                    // one's send.
                    let due = Duration::from_millis(50 * index as u64);
                    assert!(step.at.abs_diff(due) < Duration::from_micros(2), "{step:?}");
                    order_at.insert(index, step.at);
                }
                Action::Payment(index) => {
                    let placed = order_at.get(&index).expect("order before its payment");
                    assert!(step.at > *placed);
                }
            }
        }
        assert_eq!(order_at.len(), 200);
        let payments = schedule
            .iter()
            .filter(|step| matches!(step.action, Action::Payment(_)))
            .count();
        let missing = plan
            .orders
            .iter()
            .filter(|order| order.category == Category::MissingPayment)
            .count();
        assert_eq!(payments, 200 - missing);
    }

    #[test]
    fn ids_are_unique() {
        let plan = generate(&busy_settings(), 8);
        let mut ids = BTreeSet::new();
        for order in &plan.orders {
            assert!(ids.insert(order.event_id.to_string()));
            assert!(ids.insert(order.order_id.clone()));
            if let Some(payment) = &order.payment {
                assert!(ids.insert(payment.event_id.to_string()));
                assert!(ids.insert(payment.payment_id.clone()));
            }
        }
        for sku in &plan.skus {
            assert!(ids.insert(sku.event_id.to_string()));
        }
    }

    /// The events satisfy the catalogue's Avro schemas: encoded with the real writers and read
    /// back unchanged.
    #[tokio::test]
    async fn events_encode_with_the_catalogue_schemas() {
        let registered: Vec<RegisteredEvent> = EVENT_TYPES
            .iter()
            .zip(1..)
            .map(|(descriptor, schema_id)| RegisteredEvent {
                descriptor,
                schema_id,
            })
            .collect();
        let codec = Codec::new(None, &registered);
        let plan = generate(&busy_settings(), 2);
        let mut events: Vec<Event> = Vec::new();
        for order in plan.orders.iter().take(60) {
            events.push(order.order_placed(start()).into());
            events.extend(order.payment_event(start()));
        }
        events.extend(
            plan.skus
                .iter()
                .filter_map(|sku| sku.initial_adjustment(start()))
                .map(Event::from),
        );
        for event in events {
            let bytes = codec.encode_to_vec(&event).expect("encodes");
            let back = codec.decode(&bytes).await.expect("decodes");
            assert_eq!(back, event);
        }
    }
}
