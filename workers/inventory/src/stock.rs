//! The stock stage: one state per SKU, changed only here, one record at a time: restocks and
//! corrections from the warehouse, holds, releases and shipments from the order stage.

use imbl::OrdMap;
use retail_events::inventory::{LowStock, SkuCommand, SkuCommandKind, SkuHoldAnswered};
use retail_events::warehouse::StockAdjusted;
use retail_events::{Event, Topic};
use retail_runtime::{Context, Handler, HandlerError};
use serde::{Deserialize, Serialize};

use crate::InventoryConfig;

/// The stock of one SKU. `available + held + shipped` equals everything the warehouse ever
/// added (restocks and corrections); `available` never goes below zero.
///
/// A busy SKU holds units for thousands of orders in flight, and the runtime hands every
/// handling a copy of the state: the maps are persistent ([`OrdMap`]), so a copy shares them
/// and a change copies only the path to the changed entry. (Their changelog form is the same
/// as a `BTreeMap`'s.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuState {
    /// Units that can be held for new orders.
    pub available: i64,
    /// Units held per order id (reserved, or pending the order's other lines).
    pub holds: OrdMap<String, i32>,
    /// Units that left with shipments.
    pub shipped: i64,
    /// Orders answered lately that hold nothing of the SKU (refused, released or shipped),
    /// with when (microseconds since the epoch): a hold of one of them is a replay of the order
    /// stage's history after a crash, and must not take units now: the order stage has already
    /// acted on the first answer. The runtime's dedup ring usually catches such a replay by
    /// event id, but it keeps only the last few inputs of a key, and a busy SKU sees many.
    /// Bounded by `--closed-order-memory` and `--closed-order-limit`.
    pub closed: OrdMap<String, i64>,
}

impl SkuState {
    /// Units held for all orders.
    pub fn held(&self) -> i64 {
        self.holds.values().map(|units| i64::from(*units)).sum()
    }
}

/// The stock stage's handler.
#[derive(Debug, Clone)]
pub struct StockStage {
    /// Available units below which `LowStock` is announced.
    low_stock_threshold: i32,
    /// How long a closed order is remembered per SKU.
    closed_order_memory_micros: i64,
    /// At most this many closed orders are remembered per SKU (the oldest go first).
    closed_order_limit: usize,
}

impl StockStage {
    /// The stage with the worker's settings.
    pub fn new(config: &InventoryConfig) -> Self {
        Self {
            low_stock_threshold: config.low_stock_threshold,
            closed_order_memory_micros: i64::try_from(config.closed_order_memory.as_micros())
                .unwrap_or(i64::MAX),
            closed_order_limit: usize::from(config.closed_order_limit),
        }
    }

    /// Records that `order` no longer holds units of the SKU, and forgets closed orders older
    /// than the memory.
    fn close(&self, stock: &mut SkuState, order: &str, context: &Context<'_>) {
        let now = context.now().as_micros();
        let oldest = now.saturating_sub(self.closed_order_memory_micros);
        let expired: Vec<String> = stock
            .closed
            .iter()
            .filter(|(_, at)| **at < oldest)
            .map(|(order, _)| order.clone())
            .collect();
        for order in &expired {
            stock.closed.remove(order);
        }
        stock.closed.insert(order.to_owned(), now);
        while stock.closed.len() > self.closed_order_limit {
            let Some(first) = stock
                .closed
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(order, _)| order.clone())
            else {
                break;
            };
            stock.closed.remove(&first);
        }
    }

    /// Announces a fall below the threshold (once per crossing, not on every change below it).
    fn announce_low(&self, sku: &str, before: i64, after: i64, context: &mut Context<'_>) {
        let threshold = i64::from(self.low_stock_threshold);
        if before >= threshold && after < threshold {
            context.emit(LowStock {
                envelope: context.envelope_for::<LowStock>(""),
                sku: sku.to_owned(),
                available: clamp(after),
                threshold: self.low_stock_threshold,
            });
        }
    }

    fn adjusted(
        &self,
        adjusted: &StockAdjusted,
        stock: &mut SkuState,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        if adjusted.quantity_delta == 0 {
            return Err(HandlerError::rejected("a stock adjustment of zero units"));
        }
        let before = stock.available;
        let after = before + i64::from(adjusted.quantity_delta);
        if after < 0 {
            return Err(HandlerError::rejected(format!(
                "adjustment of {} units of SKU {} would leave {after} available ({} held for orders)",
                adjusted.quantity_delta,
                adjusted.sku,
                stock.held()
            )));
        }
        stock.available = after;
        self.announce_low(&adjusted.sku, before, after, context);
        Ok(())
    }

    fn command(
        &self,
        command: &SkuCommand,
        stock: &mut SkuState,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let before = stock.available;
        match command.kind {
            SkuCommandKind::Hold => {
                if command.quantity <= 0 {
                    return Err(HandlerError::rejected(format!(
                        "a hold of {} units",
                        command.quantity
                    )));
                }
                // A second hold for the same order (a re-sent command with a new id) takes
                // nothing more: the first one's answer is repeated.
                let held = match stock.holds.get(&command.order_id) {
                    Some(_) => true,
                    None if stock.closed.contains_key(&command.order_id) => {
                        tracing::debug!(sku = %command.sku, order_id = %command.order_id, "hold of an order already released or shipped (a replay); refused");
                        false
                    }
                    None if stock.available >= i64::from(command.quantity) => {
                        stock.available -= i64::from(command.quantity);
                        stock
                            .holds
                            .insert(command.order_id.clone(), command.quantity);
                        true
                    }
                    None => {
                        self.close(stock, &command.order_id, context);
                        false
                    }
                };
                context.emit(SkuHoldAnswered {
                    envelope: context.envelope_for::<SkuHoldAnswered>(""),
                    order_id: command.order_id.clone(),
                    sku: command.sku.clone(),
                    requested: command.quantity,
                    held,
                    available: clamp(stock.available),
                });
            }
            SkuCommandKind::Release => {
                if let Some(units) = stock.holds.remove(&command.order_id) {
                    stock.available += i64::from(units);
                }
                self.close(stock, &command.order_id, context);
            }
            SkuCommandKind::Ship => {
                match stock.holds.remove(&command.order_id) {
                    Some(units) => stock.shipped += i64::from(units),
                    None => {
                        tracing::warn!(sku = %command.sku, order_id = %command.order_id, "shipment of units not held; ignored");
                    }
                }
                self.close(stock, &command.order_id, context);
            }
            SkuCommandKind::Unknown => {
                return Err(HandlerError::rejected(
                    "a SKU command of a kind this build does not know",
                ));
            }
        }
        self.announce_low(&command.sku, before, stock.available, context);
        Ok(())
    }
}

/// Units for an `int` field.
fn clamp(units: i64) -> i32 {
    i32::try_from(units).unwrap_or(if units < 0 { i32::MIN } else { i32::MAX })
}

impl Handler for StockStage {
    type State = SkuState;
    const STORE: Option<&'static str> = Some("stock");

    fn inputs(&self) -> Vec<Topic> {
        vec![
            Topic::WarehouseStockAdjustments,
            Topic::InventorySkuCommands,
        ]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::InventorySkuHolds, Topic::InventoryStockLevels]
    }

    fn handle(
        &self,
        event: &Event,
        state: &mut Option<SkuState>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        match event {
            Event::StockAdjusted(adjusted) => {
                let stock = state.get_or_insert_with(SkuState::default);
                self.adjusted(adjusted, stock, context)
            }
            Event::SkuCommand(command) => {
                // A SKU the warehouse never stocked has nothing available: holds are refused.
                let stock = state.get_or_insert_with(SkuState::default);
                self.command(command, stock, context)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retail_events::warehouse::StockAdjustmentReason;
    use retail_events::{Envelope, EventId, EventType, Timestamp};

    fn stage() -> StockStage {
        StockStage {
            low_stock_threshold: 5,
            closed_order_memory_micros: 1_000,
            closed_order_limit: 3,
        }
    }

    fn envelope<E: EventType>(n: u128) -> Envelope {
        Envelope {
            event_id: EventId::from_u128(n),
            event_type: E::NAME.to_owned(),
            occurred_at: Timestamp::from_micros(1_000),
            correlation_id: "x".to_owned(),
            causation_id: None,
            producer: "test".to_owned(),
            schema_version: 1,
        }
    }

    fn restock(n: u128, delta: i32) -> Event {
        Event::StockAdjusted(StockAdjusted {
            envelope: envelope::<StockAdjusted>(n),
            adjustment_id: format!("adj-{n}"),
            warehouse_id: "w1".into(),
            sku: "a".into(),
            quantity_delta: delta,
            reason: StockAdjustmentReason::Restock,
        })
    }

    fn command(n: u128, order: &str, kind: SkuCommandKind, quantity: i32) -> Event {
        Event::SkuCommand(SkuCommand {
            envelope: envelope::<SkuCommand>(n),
            sku: "a".into(),
            order_id: order.into(),
            kind,
            quantity,
        })
    }

    fn handle(event: &Event, state: &mut Option<SkuState>) -> Result<Vec<Event>, HandlerError> {
        let mut context = Context::new(event.envelope(), "inventory", Timestamp::from_micros(9));
        stage().handle(event, state, &mut context)?;
        Ok(context.into_outputs())
    }

    fn ok(event: &Event, state: &mut Option<SkuState>) -> Vec<Event> {
        handle(event, state).expect("handled")
    }

    fn answer(outputs: &[Event]) -> (bool, i32) {
        outputs
            .iter()
            .find_map(|event| match event {
                Event::SkuHoldAnswered(answer) => Some((answer.held, answer.available)),
                _ => None,
            })
            .expect("an answer")
    }

    fn balanced(state: &SkuState, stocked: i64) {
        assert!(state.available >= 0);
        assert_eq!(state.available + state.held() + state.shipped, stocked);
    }

    #[test]
    fn holds_take_available_units_and_are_refused_when_too_few_remain() {
        let mut state = None;
        ok(&restock(1, 10), &mut state);
        assert_eq!(
            answer(&ok(&command(2, "o1", SkuCommandKind::Hold, 6), &mut state)),
            (true, 4)
        );
        // 4 left: a hold of 5 is refused and takes nothing.
        assert_eq!(
            answer(&ok(&command(3, "o2", SkuCommandKind::Hold, 5), &mut state)),
            (false, 4)
        );
        assert_eq!(
            answer(&ok(&command(4, "o3", SkuCommandKind::Hold, 4), &mut state)),
            (true, 0)
        );
        let state = state.expect("state");
        assert_eq!(state.available, 0);
        balanced(&state, 10);
    }

    #[test]
    fn a_second_hold_of_the_same_order_takes_nothing_more() {
        let mut state = None;
        ok(&restock(1, 10), &mut state);
        ok(&command(2, "o1", SkuCommandKind::Hold, 6), &mut state);
        assert_eq!(
            answer(&ok(&command(3, "o1", SkuCommandKind::Hold, 6), &mut state)),
            (true, 4)
        );
        balanced(&state.expect("state"), 10);
    }

    #[test]
    fn release_and_ship_act_on_what_the_order_holds_once() {
        let mut state = None;
        ok(&restock(1, 10), &mut state);
        ok(&command(2, "o1", SkuCommandKind::Hold, 3), &mut state);
        ok(&command(3, "o2", SkuCommandKind::Hold, 4), &mut state);
        ok(&command(4, "o1", SkuCommandKind::Release, 3), &mut state);
        ok(&command(5, "o1", SkuCommandKind::Release, 3), &mut state);
        ok(&command(6, "o2", SkuCommandKind::Ship, 4), &mut state);
        ok(&command(7, "o2", SkuCommandKind::Ship, 4), &mut state);
        // A release of an order that holds nothing (refused, or cancelled before holding).
        ok(&command(8, "o9", SkuCommandKind::Release, 2), &mut state);
        let state = state.expect("state");
        assert_eq!((state.available, state.held(), state.shipped), (6, 0, 4));
        balanced(&state, 10);
    }

    #[test]
    fn a_replayed_hold_of_a_released_or_shipped_order_takes_nothing() {
        let mut state = None;
        ok(&restock(1, 10), &mut state);
        ok(&command(2, "o1", SkuCommandKind::Hold, 3), &mut state);
        ok(&command(3, "o1", SkuCommandKind::Release, 3), &mut state);
        ok(&command(4, "o2", SkuCommandKind::Hold, 2), &mut state);
        ok(&command(5, "o2", SkuCommandKind::Ship, 2), &mut state);
        // The order stage replays its history with new ids (the dedup ring has forgotten the
        // old ones): neither order takes units again.
        assert_eq!(
            answer(&ok(&command(6, "o1", SkuCommandKind::Hold, 3), &mut state)),
            (false, 8)
        );
        assert_eq!(
            answer(&ok(&command(7, "o2", SkuCommandKind::Hold, 2), &mut state)),
            (false, 8)
        );
        let stock = state.expect("state");
        assert_eq!((stock.available, stock.held(), stock.shipped), (8, 0, 2));
        balanced(&stock, 10);
    }

    #[test]
    fn a_refused_order_stays_refused_when_its_hold_is_replayed_after_a_restock() {
        let mut state = None;
        ok(&restock(1, 2), &mut state);
        assert_eq!(
            answer(&ok(&command(2, "o1", SkuCommandKind::Hold, 3), &mut state)),
            (false, 2)
        );
        ok(&restock(3, 10), &mut state);
        // The order stage already rejected o1 on the first answer: a replayed hold takes nothing.
        assert_eq!(
            answer(&ok(&command(4, "o1", SkuCommandKind::Hold, 3), &mut state)),
            (false, 12)
        );
        balanced(&state.expect("state"), 12);
    }

    #[test]
    fn at_most_the_limit_of_closed_orders_is_remembered() {
        let mut state = None;
        for n in 0..6 {
            ok(
                &command(10 + n, &format!("o{n}"), SkuCommandKind::Release, 1),
                &mut state,
            );
        }
        assert_eq!(state.expect("state").closed.len(), 3);
    }

    #[test]
    fn closed_orders_are_forgotten_after_the_memory() {
        let mut state = None;
        ok(&restock(1, 10), &mut state);
        ok(&command(2, "o1", SkuCommandKind::Release, 3), &mut state);
        let event = command(3, "o2", SkuCommandKind::Release, 3);
        let mut context =
            Context::new(event.envelope(), "inventory", Timestamp::from_micros(5_000));
        stage()
            .handle(&event, &mut state, &mut context)
            .expect("handled");
        let closed: Vec<&String> = state.as_ref().expect("state").closed.keys().collect();
        assert_eq!(closed, ["o2"]);
    }

    #[test]
    fn changelog_records_of_the_map_form_before_persistent_maps_still_restore() {
        /// `SkuState` as it was with `BTreeMap`s (changelogs written by earlier builds).
        #[derive(Serialize)]
        struct Before {
            available: i64,
            holds: std::collections::BTreeMap<String, i32>,
            shipped: i64,
            closed: std::collections::BTreeMap<String, i64>,
        }
        let before = Before {
            available: 7,
            holds: [("o1".to_owned(), 2), ("o2".to_owned(), 1)].into(),
            shipped: 4,
            closed: [("o0".to_owned(), 123)].into(),
        };
        let bytes = postcard::to_stdvec(&before).expect("encodes");
        let state: SkuState = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!((state.available, state.held(), state.shipped), (7, 3, 4));
        assert_eq!(state.closed.get("o0"), Some(&123));
        assert_eq!(postcard::to_stdvec(&state).expect("encodes"), bytes);
    }

    #[test]
    fn an_unknown_sku_has_nothing_to_hold() {
        let mut state = None;
        assert_eq!(
            answer(&ok(&command(1, "o1", SkuCommandKind::Hold, 1), &mut state)),
            (false, 0)
        );
    }

    #[test]
    fn low_stock_is_announced_once_per_fall_below_the_threshold() {
        let mut state = None;
        assert!(ok(&restock(1, 8), &mut state).is_empty());
        let outputs = ok(&command(2, "o1", SkuCommandKind::Hold, 4), &mut state);
        let low = outputs
            .iter()
            .find_map(|event| match event {
                Event::LowStock(low) => Some(low.clone()),
                _ => None,
            })
            .expect("low stock");
        assert_eq!((low.available, low.threshold), (4, 5));
        // Still below: no second announcement.
        let outputs = ok(&command(3, "o2", SkuCommandKind::Hold, 1), &mut state);
        assert!(
            !outputs
                .iter()
                .any(|event| matches!(event, Event::LowStock(_)))
        );
        // Back above, then below again: announced again.
        ok(&restock(4, 10), &mut state);
        let outputs = ok(&command(5, "o3", SkuCommandKind::Hold, 10), &mut state);
        assert!(
            outputs
                .iter()
                .any(|event| matches!(event, Event::LowStock(_)))
        );
    }

    #[test]
    fn adjustments_that_would_oversell_or_do_nothing_are_rejected() {
        let mut state = None;
        ok(&restock(1, 5), &mut state);
        ok(&command(2, "o1", SkuCommandKind::Hold, 4), &mut state);
        assert!(matches!(
            handle(&restock(3, -2), &mut state),
            Err(HandlerError::Rejected { .. })
        ));
        assert!(matches!(
            handle(&restock(4, 0), &mut state),
            Err(HandlerError::Rejected { .. })
        ));
        ok(&restock(5, -1), &mut state);
        balanced(&state.expect("state"), 4);
    }

    #[test]
    fn invalid_commands_are_rejected() {
        for (kind, quantity) in [(SkuCommandKind::Hold, 0), (SkuCommandKind::Unknown, 1)] {
            let mut state = None;
            assert!(matches!(
                handle(&command(1, "o1", kind, quantity), &mut state),
                Err(HandlerError::Rejected { .. })
            ));
        }
    }

    #[test]
    fn answers_go_to_the_order_and_are_the_same_when_handled_again() {
        let mut first = None;
        ok(&restock(1, 10), &mut first);
        let mut second = first.clone();
        let event = command(2, "o1", SkuCommandKind::Hold, 3);
        let outputs = ok(&event, &mut first);
        assert_eq!(outputs, ok(&event, &mut second));
        assert_eq!(outputs[0].key(), "o1");
        assert_eq!(outputs[0].topic(), Topic::InventorySkuHolds);
    }
}
