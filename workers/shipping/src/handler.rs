//! The shipping handler: books a shipment for every packed order.
//!
//! Stateless: an `OrderPacked` carries everything a shipment needs, so the `ShipmentCreated` is
//! a function of the input alone (the carrier rules, the label format and the input; no clock,
//! no randomness). Re-processing an input after a crash re-emits the very same bytes.

use retail_events::fulfilment::OrderPacked;
use retail_events::shipping::{LabelFormat, ShipmentCreated};
use retail_events::{Event, Topic};
use retail_runtime::{Context, Handler, HandlerError};

use crate::label::{self, LabelData};
use crate::rules::{Parcel, RuleBook};
use crate::tracking;

/// Turns `OrderPacked` into `ShipmentCreated`; ignores the other fulfilment events.
#[derive(Debug, Clone)]
pub struct ShippingHandler {
    /// Which carrier and service level each parcel gets.
    rules: RuleBook,
    /// The label document's format (text or ZPL).
    label_format: LabelFormat,
}

impl ShippingHandler {
    /// A handler choosing carriers by `rules` and rendering labels in `label_format`.
    pub fn new(rules: RuleBook, label_format: LabelFormat) -> Self {
        Self {
            rules,
            label_format,
        }
    }

    /// The shipment for `packed`, or why the order cannot be shipped.
    pub fn ship(
        &self,
        packed: &OrderPacked,
        context: &Context<'_>,
    ) -> Result<ShipmentCreated, HandlerError> {
        validate(packed)?;
        let parcel = Parcel {
            weight_grams: packed.total_weight_grams,
            country_code: &packed.shipping_address.country_code,
            speed: packed.delivery_speed,
        };
        let Some(rule) = self.rules.choose(&parcel) else {
            // Unreachable with a validated rule book and a validated order; rejecting keeps the
            // worker going if that ever changes.
            return Err(HandlerError::rejected(format!(
                "no carrier rule matches {} g to {}",
                packed.total_weight_grams, packed.shipping_address.country_code
            )));
        };
        let shipment = tracking::shipment_id(&packed.order_id);
        let shipment_id = shipment.hyphenated().to_string();
        let tracking_number =
            tracking::tracking_number(shipment, rule.choice.carrier, rule.choice.service_level);
        let label = label::render(
            self.label_format,
            &LabelData {
                carrier: rule.choice.carrier,
                service_level: rule.choice.service_level,
                tracking_number: &tracking_number,
                shipment_id: &shipment_id,
                order_id: &packed.order_id,
                address: &packed.shipping_address,
                parcel_count: packed.parcel_count,
                weight_grams: packed.total_weight_grams,
                lines: &packed.lines,
            },
        );
        Ok(ShipmentCreated {
            envelope: context.envelope_for::<ShipmentCreated>(""),
            order_id: packed.order_id.clone(),
            customer_id: packed.customer_id.clone(),
            shipment_id,
            lines: packed.lines.clone(),
            carrier: rule.choice.carrier,
            service_level: rule.choice.service_level,
            tracking_number,
            label,
        })
    }
}

impl Handler for ShippingHandler {
    type State = ();
    const STORE: Option<&'static str> = None;

    fn inputs(&self) -> Vec<Topic> {
        vec![Topic::FulfilmentOrders]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::ShippingShipments]
    }

    fn handle(
        &self,
        event: &Event,
        _state: &mut Option<()>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let Event::OrderPacked(packed) = event else {
            return Ok(());
        };
        let shipment = self.ship(packed, context)?;
        tracing::debug!(
            order_id = %shipment.order_id,
            carrier = label::carrier_name(shipment.carrier),
            service_level = label::service_name(shipment.service_level),
            "shipment created"
        );
        context.emit(shipment);
        Ok(())
    }
}

/// Rejects an `OrderPacked` no carrier could take: nothing packed, impossible quantities or
/// weights, no destination country.
fn validate(packed: &OrderPacked) -> Result<(), HandlerError> {
    if packed.lines.is_empty() {
        return Err(HandlerError::rejected("the packed order has no lines"));
    }
    if let Some(line) = packed.lines.iter().find(|line| line.quantity <= 0) {
        return Err(HandlerError::rejected(format!(
            "line {} has a non-positive quantity {}",
            line.sku, line.quantity
        )));
    }
    if packed.parcel_count <= 0 {
        return Err(HandlerError::rejected(format!(
            "the order was packed into {} parcels",
            packed.parcel_count
        )));
    }
    if packed.total_weight_grams < 0 {
        return Err(HandlerError::rejected(format!(
            "the packed order weighs {} g",
            packed.total_weight_grams
        )));
    }
    if packed.shipping_address.country_code.trim().is_empty() {
        return Err(HandlerError::rejected(
            "the shipping address has no country code",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use retail_events::common::{Address, DeliverySpeed, StockLine};
    use retail_events::fulfilment::{CancellationReason, FulfilmentStarted, OrderCancelled};
    use retail_events::shipping::{Carrier, ServiceLevel};
    use retail_events::{Envelope, EventId, EventType, Timestamp};

    use super::*;
    use crate::rules::Thresholds;

    const NOW: Timestamp = Timestamp::from_micros(1_700_000_000_000_000);

    fn handler(label_format: LabelFormat) -> ShippingHandler {
        ShippingHandler::new(
            RuleBook::from_thresholds(&Thresholds::default()).expect("valid rules"),
            label_format,
        )
    }

    fn envelope<E: EventType>() -> Envelope {
        Envelope {
            event_id: EventId::from_u128(0x1234),
            event_type: E::NAME.to_owned(),
            occurred_at: Timestamp::from_micros(1),
            correlation_id: "order-1".to_owned(),
            causation_id: Some(EventId::from_u128(0x99)),
            producer: "fulfilment".to_owned(),
            schema_version: E::REVISION,
        }
    }

    fn packed(weight_grams: i32, country_code: &str, speed: DeliverySpeed) -> OrderPacked {
        OrderPacked {
            envelope: envelope::<OrderPacked>(),
            order_id: "order-1".to_owned(),
            customer_id: "customer-1".to_owned(),
            lines: vec![
                StockLine {
                    sku: "SKU-1".to_owned(),
                    quantity: 2,
                },
                StockLine {
                    sku: "SKU-2".to_owned(),
                    quantity: 1,
                },
            ],
            parcel_count: 1,
            total_weight_grams: weight_grams,
            delivery_speed: speed,
            shipping_address: Address {
                recipient_name: "Anna Andersson".to_owned(),
                line1: "Storgatan 1".to_owned(),
                line2: None,
                city: "Stockholm".to_owned(),
                postal_code: "111 22".to_owned(),
                region: None,
                country_code: country_code.to_owned(),
            },
        }
    }

    /// Handles `input` and returns the outputs, or the error.
    fn handle(handler: &ShippingHandler, input: &Event) -> Result<Vec<Event>, HandlerError> {
        let mut context = Context::new(input.envelope(), "shipping", NOW);
        handler.handle(input, &mut None, &mut context)?;
        Ok(context.into_outputs())
    }

    fn shipment(handler: &ShippingHandler, input: OrderPacked) -> ShipmentCreated {
        let outputs = handle(handler, &Event::OrderPacked(input)).expect("handled");
        let [Event::ShipmentCreated(created)] = outputs.as_slice() else {
            panic!("one ShipmentCreated expected, got {outputs:?}");
        };
        created.clone()
    }

    #[test]
    fn every_carrier_rule_reaches_the_shipment() {
        let cases = [
            (
                1_000,
                "SE",
                DeliverySpeed::Express,
                Carrier::Ups,
                ServiceLevel::Express,
            ),
            (
                1_000,
                "DE",
                DeliverySpeed::Express,
                Carrier::Ups,
                ServiceLevel::Express,
            ),
            (
                20_000,
                "SE",
                DeliverySpeed::Standard,
                Carrier::Postnord,
                ServiceLevel::Standard,
            ),
            (
                20_001,
                "SE",
                DeliverySpeed::Standard,
                Carrier::Dhl,
                ServiceLevel::Standard,
            ),
            (
                2_000,
                "DE",
                DeliverySpeed::Standard,
                Carrier::Dpd,
                ServiceLevel::Economy,
            ),
            (
                2_001,
                "DE",
                DeliverySpeed::Unknown,
                Carrier::Dhl,
                ServiceLevel::Standard,
            ),
        ];
        let handler = handler(LabelFormat::Text);
        for (weight, country, speed, carrier, service_level) in cases {
            let created = shipment(&handler, packed(weight, country, speed));
            assert_eq!(
                (created.carrier, created.service_level),
                (carrier, service_level),
                "{weight} g to {country}, {speed:?}"
            );
        }
    }

    #[test]
    fn the_shipment_carries_the_order_its_lines_and_a_derived_envelope() {
        let input = packed(1_500, "SE", DeliverySpeed::Standard);
        let created = shipment(&handler(LabelFormat::Text), input.clone());
        assert_eq!(created.order_id, "order-1");
        assert_eq!(created.customer_id, "customer-1");
        assert_eq!(created.lines, input.lines);
        assert_eq!(
            created.shipment_id,
            tracking::shipment_id("order-1").hyphenated().to_string()
        );
        assert!(
            created.tracking_number.starts_with("00373"),
            "{}",
            created.tracking_number
        );
        assert_eq!(created.envelope.causation_id, Some(input.envelope.event_id));
        assert_eq!(created.envelope.correlation_id, "order-1");
        assert_eq!(created.envelope.occurred_at, NOW);
        assert_eq!(created.envelope.event_type, ShipmentCreated::NAME);
        assert_eq!(
            created.envelope.event_id,
            EventId::derived(input.envelope.event_id, ShipmentCreated::NAME, "")
        );
        let label = String::from_utf8(created.label.document).expect("utf-8");
        assert_eq!(created.label.format, LabelFormat::Text);
        for expected in [
            "POSTNORD",
            "STANDARD",
            created.tracking_number.as_str(),
            "Anna Andersson",
            "111 22 Stockholm",
            "Parcels:   1",
            "1.500 kg",
            "order-1",
            "2 x SKU-1",
            "1 x SKU-2",
        ] {
            assert!(
                label.contains(expected),
                "{expected:?} missing from\n{label}"
            );
        }
    }

    #[test]
    fn the_label_format_flag_selects_zpl() {
        let created = shipment(
            &handler(LabelFormat::Zpl),
            packed(1_500, "SE", DeliverySpeed::Standard),
        );
        assert_eq!(created.label.format, LabelFormat::Zpl);
        assert!(created.label.document.starts_with(b"^XA"));
    }

    #[test]
    fn the_same_input_gives_byte_identical_outputs() {
        for format in [LabelFormat::Text, LabelFormat::Zpl] {
            let handler = handler(format);
            let input = Event::OrderPacked(packed(3_000, "NO", DeliverySpeed::Standard));
            let first = handle(&handler, &input).expect("handled");
            let second = handle(&handler, &input).expect("handled");
            assert_eq!(first, second);
            assert_eq!(format!("{first:?}"), format!("{second:?}"));
        }
    }

    #[test]
    fn another_order_gets_another_shipment_and_tracking_number() {
        let handler = handler(LabelFormat::Text);
        let first = shipment(&handler, packed(1_000, "SE", DeliverySpeed::Standard));
        let mut other = packed(1_000, "SE", DeliverySpeed::Standard);
        other.order_id = "order-2".to_owned();
        let second = shipment(&handler, other);
        assert_ne!(first.shipment_id, second.shipment_id);
        assert_ne!(first.tracking_number, second.tracking_number);
    }

    fn rejection(input: OrderPacked) -> String {
        match handle(&handler(LabelFormat::Text), &Event::OrderPacked(input)) {
            Err(HandlerError::Rejected { reason }) => reason,
            other => panic!("a rejection expected, got {other:?}"),
        }
    }

    #[test]
    fn an_order_without_lines_is_rejected() {
        let mut input = packed(1_000, "SE", DeliverySpeed::Standard);
        input.lines.clear();
        assert_eq!(rejection(input), "the packed order has no lines");
    }

    #[test]
    fn non_positive_quantities_are_rejected() {
        for quantity in [0, -1] {
            let mut input = packed(1_000, "SE", DeliverySpeed::Standard);
            input.lines[1].quantity = quantity;
            assert_eq!(
                rejection(input),
                format!("line SKU-2 has a non-positive quantity {quantity}")
            );
        }
    }

    #[test]
    fn a_negative_weight_is_rejected() {
        assert_eq!(
            rejection(packed(-1, "SE", DeliverySpeed::Standard)),
            "the packed order weighs -1 g"
        );
    }

    #[test]
    fn an_empty_country_code_is_rejected() {
        assert_eq!(
            rejection(packed(1_000, "  ", DeliverySpeed::Standard)),
            "the shipping address has no country code"
        );
    }

    #[test]
    fn zero_parcels_are_rejected() {
        let mut input = packed(1_000, "SE", DeliverySpeed::Standard);
        input.parcel_count = 0;
        assert_eq!(rejection(input), "the order was packed into 0 parcels");
    }

    #[test]
    fn other_fulfilment_events_are_ignored() {
        let handler = handler(LabelFormat::Text);
        let started = Event::FulfilmentStarted(FulfilmentStarted {
            envelope: envelope::<FulfilmentStarted>(),
            order_id: "order-1".to_owned(),
            warehouse_id: "w1".to_owned(),
            pack_by: Timestamp::from_micros(5),
        });
        let cancelled = Event::OrderCancelled(OrderCancelled {
            envelope: envelope::<OrderCancelled>(),
            order_id: "order-1".to_owned(),
            customer_id: "customer-1".to_owned(),
            reason: CancellationReason::OutOfStock,
            detail: "SKU-1 is out of stock".to_owned(),
        });
        for input in [started, cancelled] {
            assert_eq!(handle(&handler, &input), Ok(Vec::new()));
        }
    }

    #[test]
    fn the_handler_reads_fulfilment_and_writes_shipments_without_state() {
        let handler = handler(LabelFormat::Text);
        assert_eq!(handler.inputs(), vec![Topic::FulfilmentOrders]);
        assert_eq!(handler.outputs(), vec![Topic::ShippingShipments]);
        assert_eq!(ShippingHandler::STORE, None);
    }
}
