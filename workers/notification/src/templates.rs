//! The message templates: one minijinja template per kind of message, each with a `subject`
//! and a `body` block.
//!
//! The templates in `workers/notification/templates/` are built into the binary; a directory
//! given with `--templates-dir` may override any of them by file name (`order_confirmed.txt`,
//! `payment_failed.txt`, `order_cancelled.txt`, `order_shipped.txt`). Every template is
//! rendered against a sample at start-up, with undefined variables as errors, so a typo in an
//! override stops the worker instead of failing messages later.
//!
//! Variables (see [`View`]): `order_id`, `notification_id`, `kind`, `customer_name`,
//! `customer_email`, `order_total`, `lines` (each with `sku`, `product_name`, `quantity`,
//! `unit_price`, `line_total`), and for their kinds `payment` (`reason`, `reason_text`,
//! `message`, `amount`), `cancellation` (`reason`, `reason_text`, `detail`) and `shipment`
//! (`carrier`, `service_level`, `tracking_number`, `shipment_id`). Nothing time-dependent is
//! offered: a replay must render the same text.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use retail_events::common::Money;
use retail_events::fulfilment::CancellationReason;
use retail_events::notification::NotificationKind;
use retail_events::payments::PaymentFailureReason;
use retail_events::shipping::{Carrier, ServiceLevel};
use serde::Serialize;

use crate::state::{Details, Line, PlacedOrder};

/// The kinds with a template, and their file names.
const TEMPLATES: [(NotificationKind, &str, &str); 4] = [
    (
        NotificationKind::OrderConfirmed,
        "order_confirmed.txt",
        include_str!("../templates/order_confirmed.txt"),
    ),
    (
        NotificationKind::PaymentFailed,
        "payment_failed.txt",
        include_str!("../templates/payment_failed.txt"),
    ),
    (
        NotificationKind::OrderCancelled,
        "order_cancelled.txt",
        include_str!("../templates/order_cancelled.txt"),
    ),
    (
        NotificationKind::OrderShipped,
        "order_shipped.txt",
        include_str!("../templates/order_shipped.txt"),
    ),
];

/// Why templates cannot be loaded or a message cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The override directory or a file in it cannot be read.
    #[error("cannot read template {path} (--templates-dir, NOTIFICATION_TEMPLATES_DIR): {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A template does not parse, lacks a block, or uses a variable that does not exist.
    #[error("template {name}: {source}")]
    Invalid {
        /// The template's file name.
        name: &'static str,
        /// minijinja's explanation, with the line.
        source: minijinja::Error,
    },
    /// No template for this kind (`UNKNOWN`).
    #[error("no template for notification kind {0:?}")]
    NoTemplate(NotificationKind),
}

/// A rendered subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, whitespace collapsed (a newline would break an e-mail header).
    pub subject: String,
    /// The body, without leading or trailing blank lines, ending in one newline.
    pub body: String,
}

/// The loaded templates.
#[derive(Debug)]
pub struct Templates {
    /// One template per kind, by file name.
    environment: Environment<'static>,
    /// Where overrides came from, for the start-up log.
    overridden: Vec<&'static str>,
}

impl Templates {
    /// The built-in templates.
    pub fn builtin() -> Result<Self, TemplateError> {
        Self::load(None)
    }

    /// The built-in templates, each replaced by the file of the same name in `dir` if there is
    /// one; checked by rendering every one against a sample.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        environment.set_trim_blocks(true);
        environment.set_lstrip_blocks(true);
        // Plain text: nothing is HTML-escaped, whatever the file name.
        environment.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            return Err(TemplateError::Read {
                path: dir.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        let mut overridden = Vec::new();
        for (_, name, builtin) in TEMPLATES {
            let source = match dir.map(|dir| dir.join(name)).filter(|path| path.exists()) {
                Some(path) => {
                    overridden.push(name);
                    std::fs::read_to_string(&path)
                        .map_err(|source| TemplateError::Read { path, source })?
                }
                None => builtin.to_owned(),
            };
            environment
                .add_template_owned(name, source)
                .map_err(|source| TemplateError::Invalid { name, source })?;
        }
        let templates = Self {
            environment,
            overridden,
        };
        templates.check()?;
        Ok(templates)
    }

    /// The file names of the templates that came from the override directory.
    pub fn overridden(&self) -> &[&'static str] {
        &self.overridden
    }

    /// Renders the `view.kind` message.
    pub fn render(&self, view: &View<'_>) -> Result<Rendered, TemplateError> {
        let name = TEMPLATES
            .iter()
            .find(|(kind, _, _)| *kind == view.kind)
            .map(|(_, name, _)| *name)
            .ok_or(TemplateError::NoTemplate(view.kind))?;
        let invalid = |source| TemplateError::Invalid { name, source };
        let template = self.environment.get_template(name).map_err(invalid)?;
        let mut captured = template.render_captured(view).map_err(invalid)?;
        let (subject, body) = captured
            .with_state_mut(|state| {
                Ok((state.render_block("subject")?, state.render_block("body")?))
            })
            .map_err(invalid)?;
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            body: format!("{}\n", body.trim_matches('\n').trim_end()),
        })
    }

    /// Renders every template against a sample of its kind.
    fn check(&self) -> Result<(), TemplateError> {
        let order = sample_order();
        for details in sample_details() {
            self.render(&View::new(
                "order-1",
                "00000000-0000-0000-0000-000000000000",
                &order,
                &details,
            ))?;
        }
        Ok(())
    }
}

/// What a template sees.
#[derive(Debug, Clone, Serialize)]
pub struct View<'a> {
    /// Which message (its Avro symbol, e.g. `ORDER_SHIPPED`); also selects the template.
    pub kind: NotificationKind,
    /// The idempotency key, e.g. for a reference line.
    pub notification_id: &'a str,
    /// The order.
    pub order_id: &'a str,
    /// The customer's full name.
    pub customer_name: &'a str,
    /// The customer's e-mail address.
    pub customer_email: &'a str,
    /// The order total, formatted (`1234.50 SEK`).
    pub order_total: String,
    /// The order lines.
    pub lines: Vec<LineView<'a>>,
    /// For `PAYMENT_FAILED`.
    pub payment: Option<PaymentView<'a>>,
    /// For `ORDER_CANCELLED`.
    pub cancellation: Option<CancellationView<'a>>,
    /// For `ORDER_SHIPPED`.
    pub shipment: Option<ShipmentView<'a>>,
}

/// An order line as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct LineView<'a> {
    /// The SKU.
    pub sku: &'a str,
    /// The product's name.
    pub product_name: &'a str,
    /// Units.
    pub quantity: i32,
    /// Price of one unit, formatted.
    pub unit_price: String,
    /// Quantity times unit price, formatted.
    pub line_total: String,
}

/// A failed payment as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentView<'a> {
    /// The reason's symbol, e.g. `DECLINED`.
    pub reason: &'static str,
    /// The reason in words for the customer.
    pub reason_text: &'static str,
    /// The provider's explanation, if any.
    pub message: Option<&'a str>,
    /// The amount, formatted.
    pub amount: String,
}

/// A cancellation as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct CancellationView<'a> {
    /// The reason's symbol, e.g. `OUT_OF_STOCK`.
    pub reason: &'static str,
    /// The reason in words for the customer.
    pub reason_text: &'static str,
    /// Fulfilment's explanation.
    pub detail: &'a str,
}

/// A shipment as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct ShipmentView<'a> {
    /// The carrier's name, e.g. `PostNord`.
    pub carrier: &'static str,
    /// The service level in words, e.g. `standard`.
    pub service_level: &'static str,
    /// The tracking number.
    pub tracking_number: &'a str,
    /// The shipment's id.
    pub shipment_id: &'a str,
}

impl<'a> View<'a> {
    /// The view of the message `details` describe, about `order`.
    pub fn new(
        order_id: &'a str,
        notification_id: &'a str,
        order: &'a PlacedOrder,
        details: &'a Details,
    ) -> Self {
        let lines = order.lines.iter().map(LineView::new).collect();
        let mut view = Self {
            kind: details.kind(),
            notification_id,
            order_id,
            customer_name: &order.full_name,
            customer_email: &order.email,
            order_total: format_money(&order.total),
            lines,
            payment: None,
            cancellation: None,
            shipment: None,
        };
        match details {
            Details::OrderConfirmed => {}
            Details::PaymentFailed {
                reason,
                message,
                amount,
            } => {
                view.payment = Some(PaymentView {
                    reason: payment_reason(*reason).0,
                    reason_text: payment_reason(*reason).1,
                    message: message.as_deref(),
                    amount: format_money(amount),
                });
            }
            Details::OrderCancelled { reason, detail } => {
                view.cancellation = Some(CancellationView {
                    reason: cancellation_reason(*reason).0,
                    reason_text: cancellation_reason(*reason).1,
                    detail,
                });
            }
            Details::OrderShipped {
                carrier,
                service_level,
                tracking_number,
                shipment_id,
            } => {
                view.shipment = Some(ShipmentView {
                    carrier: carrier_name(*carrier),
                    service_level: service_name(*service_level),
                    tracking_number,
                    shipment_id,
                });
            }
        }
        view
    }
}

impl<'a> LineView<'a> {
    fn new(line: &'a Line) -> Self {
        let line_total = Money {
            amount_minor: line
                .unit_price
                .amount_minor
                .saturating_mul(i64::from(line.quantity)),
            currency: line.unit_price.currency.clone(),
        };
        Self {
            sku: &line.sku,
            product_name: &line.product_name,
            quantity: line.quantity,
            unit_price: format_money(&line.unit_price),
            line_total: format_money(&line_total),
        }
    }
}

/// `123450` minor units of `SEK` as `1234.50 SEK`, with the currency's number of decimals
/// (ISO 4217; two unless listed). Integer arithmetic only, so the text never depends on float
/// rounding.
pub fn format_money(money: &Money) -> String {
    let decimals: u32 = match money.currency.as_str() {
        "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "UGX" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    };
    let sign = if money.amount_minor < 0 { "-" } else { "" };
    let magnitude = money.amount_minor.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{magnitude} {}", money.currency);
    }
    let unit = 10u64.pow(decimals);
    format!(
        "{sign}{}.{:0width$} {}",
        magnitude / unit,
        magnitude % unit,
        money.currency,
        width = decimals as usize
    )
}

fn payment_reason(reason: PaymentFailureReason) -> (&'static str, &'static str) {
    match reason {
        PaymentFailureReason::Declined => ("DECLINED", "the payment was declined"),
        PaymentFailureReason::InsufficientFunds => {
            ("INSUFFICIENT_FUNDS", "there were not enough funds")
        }
        PaymentFailureReason::ExpiredInstrument => (
            "EXPIRED_INSTRUMENT",
            "the card or payment method has expired",
        ),
        PaymentFailureReason::ProviderError => (
            "PROVIDER_ERROR",
            "the payment provider had a technical problem",
        ),
        PaymentFailureReason::Unknown => ("UNKNOWN", "the payment did not go through"),
    }
}

fn cancellation_reason(reason: CancellationReason) -> (&'static str, &'static str) {
    match reason {
        CancellationReason::OutOfStock => ("OUT_OF_STOCK", "some items are out of stock"),
        CancellationReason::PaymentFailed => ("PAYMENT_FAILED", "the payment failed"),
        CancellationReason::FraudSuspected => ("FRAUD_SUSPECTED", "we could not verify the order"),
        CancellationReason::Timeout => ("TIMEOUT", "we could not complete it in time"),
        CancellationReason::Unknown => ("UNKNOWN", "of a problem on our side"),
    }
}

fn carrier_name(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Postnord => "PostNord",
        Carrier::Dhl => "DHL",
        Carrier::Ups => "UPS",
        Carrier::Dpd => "DPD",
        Carrier::Unknown => "our carrier",
    }
}

fn service_name(service_level: ServiceLevel) -> &'static str {
    match service_level {
        ServiceLevel::Economy => "economy",
        ServiceLevel::Standard => "standard",
        ServiceLevel::Express => "express",
        ServiceLevel::Unknown => "standard",
    }
}

fn sample_order() -> PlacedOrder {
    PlacedOrder {
        customer_id: "customer-1".to_owned(),
        email: "customer@example.com".to_owned(),
        full_name: "Sample Customer".to_owned(),
        total: Money {
            amount_minor: 1_000,
            currency: "SEK".to_owned(),
        },
        lines: vec![Line {
            sku: "SKU-1".to_owned(),
            product_name: "Sample".to_owned(),
            quantity: 1,
            unit_price: Money {
                amount_minor: 1_000,
                currency: "SEK".to_owned(),
            },
        }],
    }
}

fn sample_details() -> [Details; 4] {
    [
        Details::OrderConfirmed,
        Details::PaymentFailed {
            reason: PaymentFailureReason::Declined,
            message: Some("sample".to_owned()),
            amount: Money {
                amount_minor: 1_000,
                currency: "SEK".to_owned(),
            },
        },
        Details::OrderCancelled {
            reason: CancellationReason::OutOfStock,
            detail: "sample".to_owned(),
        },
        Details::OrderShipped {
            carrier: Carrier::Postnord,
            service_level: ServiceLevel::Standard,
            tracking_number: "00373000000000000000".to_owned(),
            shipment_id: "shipment-1".to_owned(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(details: &Details) -> Rendered {
        let templates = Templates::builtin().expect("built-in templates are valid");
        let mut order = sample_order();
        order.full_name = "Anna Andersson".to_owned();
        order.total = Money {
            amount_minor: 59_800,
            currency: "SEK".to_owned(),
        };
        order.lines[0].product_name = "Rain jacket".to_owned();
        order.lines[0].quantity = 2;
        order.lines[0].unit_price.amount_minor = 29_900;
        templates
            .render(&View::new("order-7", "n-1", &order, details))
            .expect("renders")
    }

    #[test]
    fn the_confirmation_lists_the_lines_and_the_total() {
        let rendered = render(&Details::OrderConfirmed);
        assert_eq!(rendered.subject, "Your order order-7 is confirmed");
        assert!(
            rendered.body.starts_with("Hi Anna Andersson,\n"),
            "{}",
            rendered.body
        );
        assert!(
            rendered
                .body
                .contains("  2 x Rain jacket (SKU-1), 598.00 SEK\n"),
            "{}",
            rendered.body
        );
        assert!(
            rendered.body.contains("Total: 598.00 SEK"),
            "{}",
            rendered.body
        );
        assert!(
            rendered.body.ends_with("Retail customer service\n"),
            "{:?}",
            rendered.body
        );
    }

    #[test]
    fn the_payment_failure_says_why() {
        let rendered = render(&Details::PaymentFailed {
            reason: PaymentFailureReason::InsufficientFunds,
            message: Some("card limit reached".to_owned()),
            amount: Money {
                amount_minor: 59_800,
                currency: "SEK".to_owned(),
            },
        });
        assert_eq!(rendered.subject, "Payment for order order-7 failed");
        assert!(rendered.body.contains("598.00 SEK"), "{}", rendered.body);
        assert!(
            rendered.body.contains("there were not enough funds"),
            "{}",
            rendered.body
        );
        assert!(
            rendered.body.contains("card limit reached"),
            "{}",
            rendered.body
        );
    }

    #[test]
    fn the_cancellation_says_why() {
        let rendered = render(&Details::OrderCancelled {
            reason: CancellationReason::OutOfStock,
            detail: "SKU-1 is sold out".to_owned(),
        });
        assert_eq!(rendered.subject, "Your order order-7 was cancelled");
        assert!(
            rendered
                .body
                .contains("because some items are out of stock"),
            "{}",
            rendered.body
        );
        assert!(
            rendered.body.contains("SKU-1 is sold out"),
            "{}",
            rendered.body
        );
    }

    #[test]
    fn the_shipping_notice_has_the_carrier_and_tracking_number() {
        let rendered = render(&Details::OrderShipped {
            carrier: Carrier::Ups,
            service_level: ServiceLevel::Express,
            tracking_number: "1ZR3T41L010000001".to_owned(),
            shipment_id: "s-1".to_owned(),
        });
        assert_eq!(rendered.subject, "Your order order-7 has shipped");
        assert!(
            rendered.body.contains("with UPS (express)"),
            "{}",
            rendered.body
        );
        assert!(
            rendered.body.contains("Tracking number: 1ZR3T41L010000001"),
            "{}",
            rendered.body
        );
    }

    #[test]
    fn money_is_formatted_with_the_currencys_decimals() {
        let money = |amount_minor, currency: &str| Money {
            amount_minor,
            currency: currency.to_owned(),
        };
        assert_eq!(format_money(&money(123_450, "SEK")), "1234.50 SEK");
        assert_eq!(format_money(&money(5, "EUR")), "0.05 EUR");
        assert_eq!(format_money(&money(-150, "EUR")), "-1.50 EUR");
        assert_eq!(format_money(&money(1_200, "JPY")), "1200 JPY");
        assert_eq!(format_money(&money(1_234, "KWD")), "1.234 KWD");
    }

    /// A fresh directory under the system's temporary directory.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "notification-templates-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_directory_overrides_the_templates_it_has() {
        let dir = temp_dir("override");
        std::fs::write(
            dir.join("order_shipped.txt"),
            "{% block subject %}Shipped: {{ order_id }}{% endblock %}{% block body %}Track {{ shipment.tracking_number }}{% endblock %}",
        )
        .expect("write");
        let templates = Templates::load(Some(&dir)).expect("valid override");
        assert_eq!(templates.overridden(), ["order_shipped.txt"]);
        let order = sample_order();
        let details = Details::OrderShipped {
            carrier: Carrier::Dhl,
            service_level: ServiceLevel::Standard,
            tracking_number: "123".to_owned(),
            shipment_id: "s".to_owned(),
        };
        let rendered = templates
            .render(&View::new("order-9", "n", &order, &details))
            .expect("renders");
        assert_eq!(rendered.subject, "Shipped: order-9");
        assert_eq!(rendered.body, "Track 123\n");
        let confirmed = templates
            .render(&View::new("order-9", "n", &order, &Details::OrderConfirmed))
            .expect("renders");
        assert_eq!(confirmed.subject, "Your order order-9 is confirmed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_override_with_an_unknown_variable_is_refused_at_load() {
        let dir = temp_dir("typo");
        std::fs::write(
            dir.join("order_cancelled.txt"),
            "{% block subject %}{{ order_idd }}{% endblock %}{% block body %}x{% endblock %}",
        )
        .expect("write");
        let error = Templates::load(Some(&dir)).expect_err("refused");
        assert!(
            matches!(
                error,
                TemplateError::Invalid {
                    name: "order_cancelled.txt",
                    ..
                }
            ),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_override_without_a_block_is_refused_at_load() {
        let dir = temp_dir("noblock");
        std::fs::write(
            dir.join("order_confirmed.txt"),
            "{% block subject %}x{% endblock %}",
        )
        .expect("write");
        let error = Templates::load(Some(&dir)).expect_err("refused");
        assert!(
            matches!(
                error,
                TemplateError::Invalid {
                    name: "order_confirmed.txt",
                    ..
                }
            ),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_directory_is_refused() {
        let error =
            Templates::load(Some(Path::new("/nonexistent/templates"))).expect_err("refused");
        assert!(matches!(error, TemplateError::Read { .. }), "{error}");
    }
}
