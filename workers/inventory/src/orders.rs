//! The order stage: one state per order, turning an order into per-SKU holds and the answers
//! into `StockReserved` / `StockRejected`; releasing on cancellation; shipping on shipment.

use std::collections::BTreeMap;
use std::time::Duration;

use retail_events::common::StockLine;
use retail_events::fulfilment::OrderCancelled;
use retail_events::inventory::{
    ReleaseReason, ShortLine, SkuCommand, SkuCommandKind, SkuHoldAnswered, StockRejected,
    StockReleased, StockReserved,
};
use retail_events::shipping::ShipmentCreated;
use retail_events::storefront::OrderPlaced;
use retail_events::{Envelope, Event, Timestamp, Topic};
use retail_runtime::{Context, Handler, HandlerError, Timer};
use serde::{Deserialize, Serialize};

use crate::InventoryConfig;

/// Where an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderPhase {
    /// Holds sent; waiting for every SKU's answer.
    Holding,
    /// Every line is held for the order.
    Reserved,
    /// Some line was short; what was held is released. Final.
    Rejected,
    /// The order was cancelled and what it held is released. Final.
    Released,
    /// The order shipped; its holds became shipped units. Final.
    Shipped,
    /// Cancelled before the order itself arrived: a late `OrderPlaced` must not hold anything.
    /// Final.
    CancelledBeforePlaced,
}

impl OrderPhase {
    fn is_final(self) -> bool {
        !matches!(self, Self::Holding | Self::Reserved)
    }

    /// Final, and no SKU may hold units for the order any more (a shipped order's holds became
    /// shipped units instead).
    fn holds_nothing(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Released | Self::CancelledBeforePlaced
        )
    }
}

/// A SKU's answer to the order's hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The units are held for the order.
    pub held: bool,
    /// Units available at the answer (for the short lines of a rejection).
    pub available: i32,
}

/// The state of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// Where the order is.
    pub phase: OrderPhase,
    /// Units per SKU (an order's lines of one SKU are held together), in SKU order.
    pub lines: BTreeMap<String, i32>,
    /// Answers received, by SKU.
    pub answers: BTreeMap<String, Answer>,
    /// A cancellation arrived while holds were pending: everything is released already, and
    /// `StockReleased` goes out once the last answer is in.
    pub cancelled_while_holding: bool,
    /// When a final order is forgotten, and the event that made it final (the cause the
    /// retention timer needs).
    pub forget: Option<(Timestamp, Envelope)>,
}

impl OrderState {
    fn stock_lines(&self, skus: impl Fn(&str) -> bool) -> Vec<StockLine> {
        self.lines
            .iter()
            .filter(|(sku, _)| skus(sku))
            .map(|(sku, quantity)| StockLine {
                sku: sku.clone(),
                quantity: *quantity,
            })
            .collect()
    }

    fn held_lines(&self) -> Vec<StockLine> {
        self.stock_lines(|sku| self.answers.get(sku).is_some_and(|answer| answer.held))
    }
}

/// The order stage's handler.
#[derive(Debug, Clone)]
pub struct OrderStage {
    /// How long a final order is remembered.
    retention: Duration,
}

impl OrderStage {
    /// The stage with the worker's settings.
    pub fn new(config: &InventoryConfig) -> Self {
        Self {
            retention: config.order_retention,
        }
    }

    fn command(
        context: &mut Context<'_>,
        order_id: &str,
        sku: &str,
        kind: SkuCommandKind,
        quantity: i32,
    ) {
        let tag = match kind {
            SkuCommandKind::Hold => "hold",
            SkuCommandKind::Release => "release",
            SkuCommandKind::Ship => "ship",
            SkuCommandKind::Unknown => "unknown",
        };
        context.emit(SkuCommand {
            envelope: context.envelope_for::<SkuCommand>(&format!("{tag}:{sku}")),
            sku: sku.to_owned(),
            order_id: order_id.to_owned(),
            kind,
            quantity,
        });
    }

    /// Sends `kind` for every SKU of the order.
    fn command_all(
        context: &mut Context<'_>,
        order_id: &str,
        state: &OrderState,
        kind: SkuCommandKind,
    ) {
        for (sku, quantity) in &state.lines {
            Self::command(context, order_id, sku, kind, *quantity);
        }
    }

    /// Enters a final phase: remembered for the retention period, then forgotten.
    fn finish(&self, state: &mut OrderState, phase: OrderPhase, context: &Context<'_>) {
        state.phase = phase;
        state.forget = Some((context.now().plus(self.retention), context.input().clone()));
    }

    fn placed(
        &self,
        order: &OrderPlaced,
        state: &mut Option<OrderState>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        if let Some(existing) = state {
            tracing::debug!(order_id = %order.order_id, phase = ?existing.phase, "order already known; placement ignored");
            return Ok(());
        }
        if order.lines.is_empty() {
            return Err(HandlerError::rejected("an order without lines"));
        }
        let mut lines: BTreeMap<String, i32> = BTreeMap::new();
        for line in &order.lines {
            if line.quantity <= 0 {
                return Err(HandlerError::rejected(format!(
                    "line {} of SKU {} has quantity {}",
                    line.line_number, line.sku, line.quantity
                )));
            }
            if line.sku.is_empty() {
                return Err(HandlerError::rejected(format!(
                    "line {} has no SKU",
                    line.line_number
                )));
            }
            let total = lines.entry(line.sku.clone()).or_default();
            *total = total.checked_add(line.quantity).ok_or_else(|| {
                HandlerError::rejected(format!("quantity of SKU {} overflows", line.sku))
            })?;
        }
        let new = OrderState {
            phase: OrderPhase::Holding,
            lines,
            answers: BTreeMap::new(),
            cancelled_while_holding: false,
            forget: None,
        };
        Self::command_all(context, &order.order_id, &new, SkuCommandKind::Hold);
        *state = Some(new);
        Ok(())
    }

    fn answered(
        &self,
        answer: &SkuHoldAnswered,
        state: &mut Option<OrderState>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let Some(order) = state else {
            tracing::warn!(order_id = %answer.order_id, sku = %answer.sku, "hold answer for an unknown order; ignored");
            return Ok(());
        };
        if order.phase != OrderPhase::Holding || !order.lines.contains_key(&answer.sku) {
            if answer.held && order.phase.holds_nothing() {
                // An orphan hold: an instance that crashed before its state reached the
                // changelog sent it, and the restarted one, handling the cancellation before
                // the redelivered order, never will (or it came after the order was done with).
                // Nothing would ever release it, so release it now; a release is idempotent.
                tracing::info!(
                    order_id = %answer.order_id,
                    sku = %answer.sku,
                    phase = ?order.phase,
                    "hold answered for an order that holds nothing; released"
                );
                Self::command(
                    context,
                    &answer.order_id,
                    &answer.sku,
                    SkuCommandKind::Release,
                    answer.requested,
                );
            }
            return Ok(());
        }
        order.answers.entry(answer.sku.clone()).or_insert(Answer {
            held: answer.held,
            available: answer.available,
        });
        if order.answers.len() < order.lines.len() {
            return Ok(());
        }
        let order_id = answer.order_id.as_str();
        if order.cancelled_while_holding {
            // Every SKU was told to release at the cancellation; now the held lines are known.
            let held = order.held_lines();
            if !held.is_empty() {
                context.emit(StockReleased {
                    envelope: context.envelope_for::<StockReleased>(""),
                    order_id: order_id.to_owned(),
                    lines: held,
                    reason: ReleaseReason::OrderCancelled,
                });
            }
            self.finish(order, OrderPhase::Released, context);
            return Ok(());
        }
        let short: Vec<ShortLine> = order
            .lines
            .iter()
            .filter_map(|(sku, quantity)| {
                let answer = order.answers.get(sku)?;
                (!answer.held).then(|| ShortLine {
                    sku: sku.clone(),
                    requested: *quantity,
                    available: answer.available,
                })
            })
            .collect();
        if short.is_empty() {
            context.emit(StockReserved {
                envelope: context.envelope_for::<StockReserved>(""),
                order_id: order_id.to_owned(),
                lines: order.stock_lines(|_| true),
            });
            order.phase = OrderPhase::Reserved;
            return Ok(());
        }
        for line in order.held_lines() {
            Self::command(
                context,
                order_id,
                &line.sku,
                SkuCommandKind::Release,
                line.quantity,
            );
        }
        context.emit(StockRejected {
            envelope: context.envelope_for::<StockRejected>(""),
            order_id: order_id.to_owned(),
            short_lines: short,
        });
        self.finish(order, OrderPhase::Rejected, context);
        Ok(())
    }

    fn cancelled(
        &self,
        cancelled: &OrderCancelled,
        state: &mut Option<OrderState>,
        context: &mut Context<'_>,
    ) {
        let order_id = cancelled.order_id.as_str();
        let Some(order) = state else {
            // The cancellation overtook the order: remember it so the order holds nothing.
            let mut early = OrderState {
                phase: OrderPhase::CancelledBeforePlaced,
                lines: BTreeMap::new(),
                answers: BTreeMap::new(),
                cancelled_while_holding: false,
                forget: None,
            };
            self.finish(&mut early, OrderPhase::CancelledBeforePlaced, context);
            *state = Some(early);
            return;
        };
        match order.phase {
            OrderPhase::Holding => {
                if !order.cancelled_while_holding {
                    order.cancelled_while_holding = true;
                    Self::command_all(context, order_id, order, SkuCommandKind::Release);
                }
            }
            OrderPhase::Reserved => {
                Self::command_all(context, order_id, order, SkuCommandKind::Release);
                context.emit(StockReleased {
                    envelope: context.envelope_for::<StockReleased>(""),
                    order_id: order_id.to_owned(),
                    lines: order.stock_lines(|_| true),
                    reason: ReleaseReason::OrderCancelled,
                });
                self.finish(order, OrderPhase::Released, context);
            }
            phase => {
                tracing::debug!(
                    order_id,
                    ?phase,
                    "cancellation of a finished order; nothing to release"
                );
            }
        }
    }

    fn shipped(
        &self,
        shipment: &ShipmentCreated,
        state: &mut Option<OrderState>,
        context: &mut Context<'_>,
    ) {
        let Some(order) = state else {
            tracing::warn!(order_id = %shipment.order_id, "shipment of an unknown order; ignored");
            return;
        };
        if order.phase != OrderPhase::Reserved {
            tracing::warn!(order_id = %shipment.order_id, phase = ?order.phase, "shipment of an order that is not reserved; ignored");
            return;
        }
        Self::command_all(context, &shipment.order_id, order, SkuCommandKind::Ship);
        self.finish(order, OrderPhase::Shipped, context);
    }
}

impl Handler for OrderStage {
    type State = OrderState;
    const STORE: Option<&'static str> = Some("orders");

    fn inputs(&self) -> Vec<Topic> {
        vec![
            Topic::StorefrontOrders,
            Topic::FulfilmentOrders,
            Topic::ShippingShipments,
            Topic::InventorySkuHolds,
        ]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::InventoryReservations, Topic::InventorySkuCommands]
    }

    fn handle(
        &self,
        event: &Event,
        state: &mut Option<OrderState>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        match event {
            Event::OrderPlaced(order) => self.placed(order, state, context),
            Event::SkuHoldAnswered(answer) => self.answered(answer, state, context),
            Event::OrderCancelled(cancelled) => {
                self.cancelled(cancelled, state, context);
                Ok(())
            }
            Event::ShipmentCreated(shipment) => {
                self.shipped(shipment, state, context);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn timer(&self, state: &OrderState) -> Option<Timer> {
        let (due, cause) = state.forget.as_ref()?;
        state.phase.is_final().then(|| Timer {
            due: *due,
            cause: cause.clone(),
        })
    }

    fn on_timer(
        &self,
        _key: &str,
        state: &mut Option<OrderState>,
        _context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        // The retention of a final order is over.
        *state = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retail_events::common::{Address, Customer, DeliverySpeed, Money};
    use retail_events::fulfilment::CancellationReason;
    use retail_events::shipping::{Carrier, LabelFormat, ServiceLevel, ShippingLabel};
    use retail_events::storefront::OrderLine;
    use retail_events::{EventId, EventType};

    fn stage() -> OrderStage {
        OrderStage {
            retention: Duration::from_secs(3600),
        }
    }

    fn envelope<E: EventType>(n: u128) -> Envelope {
        Envelope {
            event_id: EventId::from_u128(n),
            event_type: E::NAME.to_owned(),
            occurred_at: Timestamp::from_micros(1_000),
            correlation_id: "o-1".to_owned(),
            causation_id: None,
            producer: "test".to_owned(),
            schema_version: 1,
        }
    }

    fn address() -> Address {
        Address {
            recipient_name: "A".into(),
            line1: "Street 1".into(),
            line2: None,
            city: "Town".into(),
            postal_code: "111 11".into(),
            region: None,
            country_code: "SE".into(),
        }
    }

    fn order(lines: &[(&str, i32)]) -> Event {
        Event::OrderPlaced(OrderPlaced {
            envelope: envelope::<OrderPlaced>(1),
            order_id: "o-1".into(),
            customer: Customer {
                customer_id: "c-1".into(),
                email: "c@example.com".into(),
                full_name: "C".into(),
                customer_since: Timestamp::from_micros(0),
            },
            lines: lines
                .iter()
                .enumerate()
                .map(|(index, (sku, quantity))| OrderLine {
                    line_number: i32::try_from(index).expect("few lines") + 1,
                    sku: (*sku).into(),
                    product_name: "P".into(),
                    quantity: *quantity,
                    unit_price: Money {
                        amount_minor: 100,
                        currency: "EUR".into(),
                    },
                    unit_weight_grams: 10,
                })
                .collect(),
            order_total: Money {
                amount_minor: 100,
                currency: "EUR".into(),
            },
            shipping_address: address(),
            billing_address: address(),
            delivery_speed: DeliverySpeed::Standard,
        })
    }

    fn answer(n: u128, sku: &str, requested: i32, held: bool, available: i32) -> Event {
        Event::SkuHoldAnswered(SkuHoldAnswered {
            envelope: envelope::<SkuHoldAnswered>(n),
            order_id: "o-1".into(),
            sku: sku.into(),
            requested,
            held,
            available,
        })
    }

    fn cancelled(n: u128) -> Event {
        Event::OrderCancelled(OrderCancelled {
            envelope: envelope::<OrderCancelled>(n),
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            reason: CancellationReason::PaymentFailed,
            detail: "declined".into(),
        })
    }

    fn shipment(n: u128) -> Event {
        Event::ShipmentCreated(ShipmentCreated {
            envelope: envelope::<ShipmentCreated>(n),
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            shipment_id: "s-1".into(),
            lines: vec![],
            carrier: Carrier::Postnord,
            service_level: ServiceLevel::Standard,
            tracking_number: "t".into(),
            label: ShippingLabel {
                format: LabelFormat::Text,
                document: vec![],
            },
        })
    }

    fn handle(event: &Event, state: &mut Option<OrderState>) -> Vec<Event> {
        let mut context =
            Context::new(event.envelope(), "inventory", Timestamp::from_micros(5_000));
        stage().handle(event, state, &mut context).expect("handled");
        context.into_outputs()
    }

    fn commands(outputs: &[Event]) -> Vec<(SkuCommandKind, String, i32)> {
        outputs
            .iter()
            .filter_map(|event| match event {
                Event::SkuCommand(command) => {
                    Some((command.kind, command.sku.clone(), command.quantity))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_order_sends_one_hold_per_sku_keyed_by_sku_with_lines_of_one_sku_added() {
        let mut state = None;
        let outputs = handle(&order(&[("b", 1), ("a", 2), ("b", 3)]), &mut state);
        assert_eq!(
            commands(&outputs),
            [
                (SkuCommandKind::Hold, "a".to_owned(), 2),
                (SkuCommandKind::Hold, "b".to_owned(), 4)
            ]
        );
        assert!(
            outputs
                .iter()
                .all(|event| event.topic() == Topic::InventorySkuCommands)
        );
        assert_eq!(outputs[0].key(), "a");
        assert_ne!(
            outputs[0].envelope().event_id,
            outputs[1].envelope().event_id
        );
        assert_eq!(state.expect("state").phase, OrderPhase::Holding);
    }

    #[test]
    fn every_sku_held_reserves_the_order_once() {
        let mut state = None;
        handle(&order(&[("a", 2), ("b", 1)]), &mut state);
        assert!(handle(&answer(10, "a", 2, true, 5), &mut state).is_empty());
        // The same SKU answering again (another id) does not complete the order.
        assert!(handle(&answer(11, "a", 2, true, 5), &mut state).is_empty());
        let outputs = handle(&answer(12, "b", 1, true, 0), &mut state);
        let [Event::StockReserved(reserved)] = outputs.as_slice() else {
            panic!("one StockReserved, got {outputs:?}");
        };
        assert_eq!(reserved.lines.len(), 2);
        assert_eq!(state.as_ref().expect("state").phase, OrderPhase::Reserved);
        // A late duplicate answer changes nothing.
        assert!(handle(&answer(13, "b", 1, true, 0), &mut state).is_empty());
    }

    #[test]
    fn a_short_line_rejects_the_order_and_releases_what_was_held() {
        let mut state = None;
        handle(&order(&[("a", 2), ("b", 5)]), &mut state);
        handle(&answer(10, "a", 2, true, 8), &mut state);
        let outputs = handle(&answer(11, "b", 5, false, 3), &mut state);
        assert_eq!(
            commands(&outputs),
            [(SkuCommandKind::Release, "a".to_owned(), 2)]
        );
        let rejected = outputs
            .iter()
            .find_map(|event| match event {
                Event::StockRejected(rejected) => Some(rejected),
                _ => None,
            })
            .expect("rejected");
        assert_eq!(
            rejected.short_lines,
            [ShortLine {
                sku: "b".into(),
                requested: 5,
                available: 3
            }]
        );
        let state = state.expect("state");
        assert_eq!(state.phase, OrderPhase::Rejected);
        assert!(state.forget.is_some());
    }

    #[test]
    fn cancelling_a_reserved_order_releases_every_line_once() {
        let mut state = None;
        handle(&order(&[("a", 2)]), &mut state);
        handle(&answer(10, "a", 2, true, 8), &mut state);
        let outputs = handle(&cancelled(20), &mut state);
        assert_eq!(
            commands(&outputs),
            [(SkuCommandKind::Release, "a".to_owned(), 2)]
        );
        assert!(outputs.iter().any(
            |event| matches!(event, Event::StockReleased(released) if released.lines.len() == 1)
        ));
        assert!(handle(&cancelled(21), &mut state).is_empty());
        // A shipment after the release is ignored: nothing is shipped twice or unreserved.
        assert!(handle(&shipment(22), &mut state).is_empty());
        assert_eq!(state.expect("state").phase, OrderPhase::Released);
    }

    #[test]
    fn a_cancellation_while_holding_releases_at_once_and_reports_the_held_lines_later() {
        let mut state = None;
        handle(&order(&[("a", 2), ("b", 1)]), &mut state);
        handle(&answer(10, "a", 2, true, 8), &mut state);
        let outputs = handle(&cancelled(20), &mut state);
        assert_eq!(
            commands(&outputs),
            [
                (SkuCommandKind::Release, "a".to_owned(), 2),
                (SkuCommandKind::Release, "b".to_owned(), 1)
            ]
        );
        // The last answer arrives after the cancellation: no reservation, no second release.
        let outputs = handle(&answer(11, "b", 1, true, 4), &mut state);
        let [Event::StockReleased(released)] = outputs.as_slice() else {
            panic!("one StockReleased, got {outputs:?}");
        };
        assert_eq!(released.lines.len(), 2);
        assert_eq!(state.expect("state").phase, OrderPhase::Released);
    }

    #[test]
    fn a_cancellation_before_the_order_means_the_order_never_holds_stock() {
        let mut state = None;
        assert!(handle(&cancelled(20), &mut state).is_empty());
        assert!(handle(&order(&[("a", 2)]), &mut state).is_empty());
        assert_eq!(
            state.expect("state").phase,
            OrderPhase::CancelledBeforePlaced
        );
    }

    #[test]
    fn a_hold_an_instance_sent_before_it_crashed_is_released_when_the_cancellation_came_first() {
        // The crashed instance sent the hold but its state never reached the changelog; the
        // restarted one handled the cancellation before the redelivered order.
        let mut state = None;
        handle(&cancelled(20), &mut state);
        handle(&order(&[("a", 2)]), &mut state);
        let outputs = handle(&answer(10, "a", 2, true, 8), &mut state);
        assert_eq!(
            commands(&outputs),
            [(SkuCommandKind::Release, "a".to_owned(), 2)]
        );
        assert_eq!(outputs[0].key(), "a");
        // A refusal leaves nothing to release.
        assert!(handle(&answer(11, "a", 2, false, 0), &mut state).is_empty());
        assert_eq!(
            state.expect("state").phase,
            OrderPhase::CancelledBeforePlaced
        );
    }

    #[test]
    fn a_hold_answered_after_the_order_was_released_or_rejected_is_released_again() {
        let mut released = None;
        handle(&order(&[("a", 2)]), &mut released);
        handle(&answer(10, "a", 2, true, 8), &mut released);
        handle(&cancelled(20), &mut released);
        let outputs = handle(&answer(11, "a", 2, true, 8), &mut released);
        assert_eq!(
            commands(&outputs),
            [(SkuCommandKind::Release, "a".to_owned(), 2)]
        );

        let mut rejected = None;
        handle(&order(&[("a", 2), ("b", 5)]), &mut rejected);
        handle(&answer(10, "b", 5, false, 0), &mut rejected);
        handle(&answer(11, "a", 2, true, 8), &mut rejected);
        assert_eq!(
            rejected.as_ref().expect("state").phase,
            OrderPhase::Rejected
        );
        let outputs = handle(&answer(12, "a", 2, true, 8), &mut rejected);
        assert_eq!(
            commands(&outputs),
            [(SkuCommandKind::Release, "a".to_owned(), 2)]
        );
    }

    #[test]
    fn a_late_held_answer_of_a_reserved_or_shipped_order_releases_nothing() {
        let mut state = None;
        handle(&order(&[("a", 2)]), &mut state);
        handle(&answer(10, "a", 2, true, 8), &mut state);
        assert!(handle(&answer(11, "a", 2, true, 8), &mut state).is_empty());
        handle(&shipment(30), &mut state);
        assert!(handle(&answer(12, "a", 2, true, 8), &mut state).is_empty());
    }

    #[test]
    fn a_shipment_turns_the_holds_into_shipped_units() {
        let mut state = None;
        handle(&order(&[("a", 2)]), &mut state);
        handle(&answer(10, "a", 2, true, 8), &mut state);
        let outputs = handle(&shipment(30), &mut state);
        assert_eq!(
            commands(&outputs),
            [(SkuCommandKind::Ship, "a".to_owned(), 2)]
        );
        assert!(handle(&shipment(31), &mut state).is_empty());
        assert!(handle(&cancelled(32), &mut state).is_empty());
        assert_eq!(state.expect("state").phase, OrderPhase::Shipped);
    }

    #[test]
    fn a_duplicate_placement_does_not_hold_twice() {
        let mut state = None;
        handle(&order(&[("a", 2)]), &mut state);
        assert!(handle(&order(&[("a", 2)]), &mut state).is_empty());
    }

    #[test]
    fn invalid_orders_are_rejected() {
        for lines in [&[][..], &[("a", 0)][..], &[("a", -1)][..], &[("", 1)][..]] {
            let event = order(lines);
            let mut context =
                Context::new(event.envelope(), "inventory", Timestamp::from_micros(5_000));
            let mut state = None;
            let result = stage().handle(&event, &mut state, &mut context);
            assert!(
                matches!(result, Err(HandlerError::Rejected { .. })),
                "{lines:?}: {result:?}"
            );
            assert!(state.is_none());
        }
    }

    #[test]
    fn a_final_order_is_forgotten_after_the_retention_and_an_open_one_never() {
        let mut state = None;
        handle(&order(&[("a", 2)]), &mut state);
        assert_eq!(stage().timer(state.as_ref().expect("state")), None);
        handle(&answer(10, "a", 2, false, 0), &mut state);
        let timer = stage()
            .timer(state.as_ref().expect("state"))
            .expect("retention timer");
        assert_eq!(
            timer.due,
            Timestamp::from_micros(5_000).plus(Duration::from_secs(3600))
        );
        let mut context = Context::new(&timer.cause, "inventory", timer.due);
        stage()
            .on_timer("o-1", &mut state, &mut context)
            .expect("fired");
        assert!(state.is_none());
        assert!(context.outputs().is_empty());
    }

    #[test]
    fn outputs_are_the_same_when_an_input_is_handled_again() {
        let first = handle(&order(&[("a", 2), ("b", 1)]), &mut None);
        let again = handle(&order(&[("a", 2), ("b", 1)]), &mut None);
        assert_eq!(first, again);
    }
}
