//! What an event must satisfy, beyond decoding, before any handler acts on it: the contract's
//! rules that Avro types cannot express (`schemas/README.md`, "Validity").
//!
//! Every worker's runtime checks every decoded input with [`Event::validate`] and dead-letters
//! one that breaks a rule, with the rule in the reason, so each consumer of a topic rejects the
//! same records for the same reason, and a handler sees only events it can act on. Rules a
//! single worker adds (an inventory adjustment of zero units, a parcel that does not fit) stay
//! with that worker.

use std::str::FromStr as _;

use iso_currency::{Country, Currency};

use crate::common::{Address, Money, StockLine};
use crate::event::Event;
use crate::storefront::OrderLine;
use crate::{EventType, fraud, fulfilment, inventory, notification, payments, shipping};
use crate::{storefront, warehouse};

/// Why a decoded event cannot be acted on; the message names the event, the field and the
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {event}: {rule}")]
pub struct Invalid {
    /// The event type's name.
    pub event: &'static str,
    /// The rule broken, with the offending value.
    pub rule: String,
}

/// The rules of one event type.
pub trait Validate: EventType {
    /// `Ok` when the event satisfies its type's rules; its key is checked by
    /// [`Event::validate`].
    ///
    /// # Errors
    /// The first rule the event breaks.
    fn check(&self) -> Result<(), String>;
}

impl Event {
    /// Checks the event against the rules of its type: a non-blank key (the order id, SKU or
    /// customer id it is partitioned by), then the type's own rules.
    ///
    /// # Errors
    /// The first rule broken, as [`Invalid`].
    pub fn validate(&self) -> Result<(), Invalid> {
        self.checked().map_err(|rule| Invalid {
            event: self.name(),
            rule,
        })
    }
}

/// A blank key or identifier.
pub(crate) fn present(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{field} is blank"))
    } else {
        Ok(())
    }
}

pub(crate) fn keyed<E: Validate>(event: &E) -> Result<(), String> {
    present("the key", event.key())?;
    event.check()
}

fn money(field: &str, money: &Money) -> Result<(), String> {
    if Currency::from_code(&money.currency).is_none() {
        return Err(format!(
            "{field} has currency {:?}, not an ISO 4217 code",
            money.currency
        ));
    }
    if money.amount_minor < 0 {
        return Err(format!(
            "{field} is negative ({} {})",
            money.amount_minor, money.currency
        ));
    }
    Ok(())
}

fn address(field: &str, address: &Address) -> Result<(), String> {
    let code = &address.country_code;
    let upper_alpha2 = code.len() == 2 && code.bytes().all(|byte| byte.is_ascii_uppercase());
    if !upper_alpha2 || Country::from_str(code).is_err() {
        return Err(format!(
            "{field} has country code {code:?}, not an upper-case ISO 3166-1 alpha-2 code"
        ));
    }
    Ok(())
}

fn quantity(what: &str, quantity: i32) -> Result<(), String> {
    if quantity <= 0 {
        return Err(format!("{what} has quantity {quantity}"));
    }
    Ok(())
}

fn stock_lines(lines: &[StockLine]) -> Result<(), String> {
    if lines.is_empty() {
        return Err("there are no lines".into());
    }
    for (index, line) in lines.iter().enumerate() {
        present(&format!("the SKU of line {}", index + 1), &line.sku)?;
        quantity(
            &format!("line {} (SKU {})", index + 1, line.sku),
            line.quantity,
        )?;
    }
    Ok(())
}

fn order_lines(lines: &[OrderLine], currency: &str) -> Result<(), String> {
    if lines.is_empty() {
        return Err("there are no lines".into());
    }
    for line in lines {
        let name = format!("line {}", line.line_number);
        present(&format!("the SKU of {name}"), &line.sku)?;
        quantity(&format!("{name} (SKU {})", line.sku), line.quantity)?;
        money(&format!("the unit price of {name}"), &line.unit_price)?;
        if line.unit_price.currency != currency {
            return Err(format!(
                "{name} is priced in {}, the order total in {currency}",
                line.unit_price.currency
            ));
        }
        if line.unit_weight_grams < 0 {
            return Err(format!(
                "{name} has unit weight {} g",
                line.unit_weight_grams
            ));
        }
    }
    Ok(())
}

impl Validate for storefront::OrderPlaced {
    fn check(&self) -> Result<(), String> {
        present("the customer id", &self.customer.customer_id)?;
        money("the order total", &self.order_total)?;
        order_lines(&self.lines, &self.order_total.currency)?;
        address("the shipping address", &self.shipping_address)?;
        address("the billing address", &self.billing_address)
    }
}

impl Validate for payments::PaymentAuthorized {
    fn check(&self) -> Result<(), String> {
        present("the payment id", &self.payment_id)?;
        money("the amount", &self.amount)
    }
}

impl Validate for payments::PaymentFailed {
    fn check(&self) -> Result<(), String> {
        present("the payment id", &self.payment_id)?;
        money("the amount", &self.amount)
    }
}

impl Validate for warehouse::StockAdjusted {
    fn check(&self) -> Result<(), String> {
        present("the adjustment id", &self.adjustment_id)
    }
}

impl Validate for inventory::StockReserved {
    fn check(&self) -> Result<(), String> {
        stock_lines(&self.lines)
    }
}

impl Validate for inventory::StockRejected {
    fn check(&self) -> Result<(), String> {
        if self.short_lines.is_empty() {
            return Err("there are no short lines".into());
        }
        for line in &self.short_lines {
            present("the SKU of a short line", &line.sku)?;
            quantity(&format!("short line of SKU {}", line.sku), line.requested)?;
        }
        Ok(())
    }
}

impl Validate for inventory::StockReleased {
    fn check(&self) -> Result<(), String> {
        stock_lines(&self.lines)
    }
}

impl Validate for inventory::LowStock {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Validate for inventory::SkuCommand {
    fn check(&self) -> Result<(), String> {
        present("the order id", &self.order_id)?;
        quantity("the command", self.quantity)
    }
}

impl Validate for inventory::SkuHoldAnswered {
    fn check(&self) -> Result<(), String> {
        present("the SKU", &self.sku)?;
        quantity("the answer", self.requested)
    }
}

impl Validate for fraud::FraudCheckRequested {
    fn check(&self) -> Result<(), String> {
        present("the order id", &self.order_id)?;
        money("the order total", &self.order_total)?;
        if self.line_count <= 0 {
            return Err(format!("line count is {}", self.line_count));
        }
        Ok(())
    }
}

impl Validate for fraud::FraudCleared {
    fn check(&self) -> Result<(), String> {
        present("the customer id", &self.customer_id)
    }
}

impl Validate for fraud::FraudFlagged {
    fn check(&self) -> Result<(), String> {
        present("the customer id", &self.customer_id)
    }
}

impl Validate for fulfilment::FulfilmentStarted {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Validate for fulfilment::OrderPacked {
    fn check(&self) -> Result<(), String> {
        present("the customer id", &self.customer_id)?;
        stock_lines(&self.lines)?;
        if self.parcel_count <= 0 {
            return Err(format!("parcel count is {}", self.parcel_count));
        }
        if self.total_weight_grams < 0 {
            return Err(format!("total weight is {} g", self.total_weight_grams));
        }
        address("the shipping address", &self.shipping_address)
    }
}

/// The customer id may be blank: fulfilment cancels an order whose placement it never saw (a
/// failed payment, or no answer before the deadline, with the `OrderPlaced` still missing).
impl Validate for fulfilment::OrderCancelled {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Validate for shipping::ShipmentCreated {
    fn check(&self) -> Result<(), String> {
        present("the customer id", &self.customer_id)?;
        present("the shipment id", &self.shipment_id)?;
        stock_lines(&self.lines)
    }
}

impl Validate for notification::NotificationSent {
    fn check(&self) -> Result<(), String> {
        present("the notification id", &self.notification_id)
    }
}

impl Validate for notification::NotificationFailed {
    fn check(&self) -> Result<(), String> {
        present("the notification id", &self.notification_id)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::common::{Customer, DeliverySpeed};
    use crate::{Envelope, Timestamp};

    fn order() -> storefront::OrderPlaced {
        let address = Address {
            recipient_name: "Anna Andersson".into(),
            line1: "Storgatan 1".into(),
            line2: None,
            city: "Stockholm".into(),
            postal_code: "111 22".into(),
            region: None,
            country_code: "SE".into(),
        };
        let line = |number: i32, quantity: i32| OrderLine {
            line_number: number,
            sku: format!("sku-{number}"),
            product_name: "Mug".into(),
            quantity,
            unit_price: Money {
                amount_minor: 1500,
                currency: "SEK".into(),
            },
            unit_weight_grams: 300,
        };
        storefront::OrderPlaced {
            envelope: Envelope::originating::<storefront::OrderPlaced>(
                "order-1",
                "storefront",
                Timestamp::from_micros(1),
            ),
            order_id: "order-1".into(),
            customer: Customer {
                customer_id: "customer-1".into(),
                email: "anna@example.com".into(),
                full_name: "Anna Andersson".into(),
                customer_since: Timestamp::from_micros(0),
            },
            lines: vec![line(1, 1), line(2, 3)],
            order_total: Money {
                amount_minor: 6000,
                currency: "SEK".into(),
            },
            shipping_address: address.clone(),
            billing_address: address,
            delivery_speed: DeliverySpeed::Standard,
        }
    }

    fn rule(order: storefront::OrderPlaced) -> String {
        match Event::OrderPlaced(order).validate() {
            Ok(()) => "valid".into(),
            Err(invalid) => invalid.to_string(),
        }
    }

    #[test]
    fn a_well_formed_order_is_valid() {
        assert_eq!(rule(order()), "valid");
    }

    #[test]
    fn each_broken_rule_of_an_order_is_named_with_its_value() {
        type BreakRule = fn(&mut storefront::OrderPlaced);
        let cases: Vec<(&str, BreakRule)> = vec![
            ("invalid OrderPlaced: the key is blank", |order| {
                order.order_id = " ".into()
            }),
            ("invalid OrderPlaced: the customer id is blank", |order| {
                order.customer.customer_id = String::new()
            }),
            ("invalid OrderPlaced: there are no lines", |order| {
                order.lines.clear();
            }),
            (
                "invalid OrderPlaced: line 2 (SKU sku-2) has quantity -3",
                |order| order.lines[1].quantity = -3,
            ),
            (
                "invalid OrderPlaced: line 1 (SKU sku-1) has quantity 0",
                |order| order.lines[0].quantity = 0,
            ),
            ("invalid OrderPlaced: the SKU of line 1 is blank", |order| {
                order.lines[0].sku = String::new();
            }),
            (
                "invalid OrderPlaced: the order total has currency \"XYZ\", not an ISO 4217 code",
                |order| order.order_total.currency = "XYZ".into(),
            ),
            (
                "invalid OrderPlaced: the order total has currency \"sek\", not an ISO 4217 code",
                |order| order.order_total.currency = "sek".into(),
            ),
            (
                "invalid OrderPlaced: the order total is negative (-1 SEK)",
                |order| order.order_total.amount_minor = -1,
            ),
            (
                "invalid OrderPlaced: line 2 is priced in EUR, the order total in SEK",
                |order| order.lines[1].unit_price.currency = "EUR".into(),
            ),
            (
                "invalid OrderPlaced: line 1 has unit weight -5 g",
                |order| order.lines[0].unit_weight_grams = -5,
            ),
            (
                "invalid OrderPlaced: the shipping address has country code \"se\", not an upper-case ISO 3166-1 alpha-2 code",
                |order| order.shipping_address.country_code = "se".into(),
            ),
            (
                "invalid OrderPlaced: the billing address has country code \"QQ\", not an upper-case ISO 3166-1 alpha-2 code",
                |order| order.billing_address.country_code = "QQ".into(),
            ),
        ];
        for (expected, break_rule) in cases {
            let mut broken = order();
            break_rule(&mut broken);
            assert_eq!(rule(broken), expected);
        }
    }

    #[test]
    fn a_payment_in_an_unknown_currency_or_negative_is_invalid() {
        let payment = payments::PaymentAuthorized {
            envelope: Envelope::originating::<payments::PaymentAuthorized>(
                "payment-1",
                "payments",
                Timestamp::from_micros(1),
            ),
            order_id: "order-1".into(),
            payment_id: "payment-1".into(),
            amount: Money {
                amount_minor: 100,
                currency: "EUR".into(),
            },
            method: payments::PaymentMethod::Card,
            authorization_code: "A1".into(),
        };
        assert_eq!(Event::PaymentAuthorized(payment.clone()).validate(), Ok(()));
        let mut unknown = payment.clone();
        unknown.amount.currency = "EURO".into();
        assert_eq!(
            Event::PaymentAuthorized(unknown)
                .validate()
                .expect_err("invalid")
                .to_string(),
            "invalid PaymentAuthorized: the amount has currency \"EURO\", not an ISO 4217 code"
        );
        let mut negative = payment;
        negative.amount.amount_minor = -100;
        assert!(Event::PaymentAuthorized(negative).validate().is_err());
    }

    #[test]
    fn stock_lines_need_a_sku_and_a_positive_quantity() {
        let reserved = |lines: Vec<StockLine>| {
            Event::StockReserved(inventory::StockReserved {
                envelope: Envelope::originating::<inventory::StockReserved>(
                    "order-1",
                    "inventory",
                    Timestamp::from_micros(1),
                ),
                order_id: "order-1".into(),
                lines,
            })
            .validate()
        };
        let line = |sku: &str, quantity: i32| StockLine {
            sku: sku.into(),
            quantity,
        };
        assert_eq!(reserved(vec![line("sku-1", 2)]), Ok(()));
        assert_eq!(
            reserved(vec![]).expect_err("invalid").rule,
            "there are no lines"
        );
        assert_eq!(
            reserved(vec![line("sku-1", 2), line("sku-2", -1)])
                .expect_err("invalid")
                .rule,
            "line 2 (SKU sku-2) has quantity -1"
        );
        assert_eq!(
            reserved(vec![line("", 1)]).expect_err("invalid").rule,
            "the SKU of line 1 is blank"
        );
    }

    proptest! {
        /// Validation is total: any event, however odd its values, gets a verdict, never a
        /// panic.
        #[test]
        fn any_event_gets_a_verdict(event in crate::arbitrary_event()) {
            if let Err(invalid) = event.validate() {
                prop_assert_eq!(invalid.event, event.name());
                prop_assert!(!invalid.rule.is_empty());
            }
        }
    }
}
