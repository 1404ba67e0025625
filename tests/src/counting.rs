//! A small stateful handler used to test the runtime against the real broker: it keeps a
//! running total of stock per SKU from `StockAdjusted` events and announces every new total as
//! a `LowStock` event (threshold 0), so the outputs show exactly which inputs were applied, in
//! which order, and to which state. A zero adjustment is rejected as semantically invalid.

use retail_events::inventory::LowStock;
use retail_events::{Event, Topic};
use retail_runtime::{Context, Handler, HandlerError};

/// The counting handler.
#[derive(Debug, Default)]
pub struct StockCounter;

impl Handler for StockCounter {
    type State = i64;
    const STORE: Option<&'static str> = Some("stock");

    fn inputs(&self) -> Vec<Topic> {
        vec![Topic::WarehouseStockAdjustments]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::InventoryStockLevels]
    }

    fn handle(
        &self,
        event: &Event,
        state: &mut Option<i64>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let Event::StockAdjusted(adjusted) = event else {
            return Ok(());
        };
        if adjusted.quantity_delta == 0 {
            return Err(HandlerError::rejected("a stock adjustment of zero units"));
        }
        let total = state.unwrap_or(0) + i64::from(adjusted.quantity_delta);
        *state = Some(total);
        context.emit(LowStock {
            envelope: context.envelope_for::<LowStock>(""),
            sku: adjusted.sku.clone(),
            available: i32::try_from(total).unwrap_or(i32::MAX),
            threshold: 0,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retail_events::warehouse::{StockAdjusted, StockAdjustmentReason};
    use retail_events::{Envelope, EventType, Timestamp};

    fn adjusted(delta: i32) -> Event {
        Event::StockAdjusted(StockAdjusted {
            envelope: Envelope::originating::<StockAdjusted>(
                "adj",
                "warehouse",
                Timestamp::from_micros(1),
            ),
            adjustment_id: "adj".into(),
            warehouse_id: "w1".into(),
            sku: "sku-1".into(),
            quantity_delta: delta,
            reason: StockAdjustmentReason::Restock,
        })
    }

    #[test]
    fn totals_accumulate_and_each_input_is_announced_with_a_derived_id() {
        let input = adjusted(5);
        let mut state = Some(10);
        let mut context = Context::new(input.envelope(), "counter", Timestamp::from_micros(2));
        StockCounter
            .handle(&input, &mut state, &mut context)
            .expect("handled");
        assert_eq!(state, Some(15));
        let [Event::LowStock(low)] = context.outputs() else {
            panic!("one LowStock expected");
        };
        assert_eq!((low.sku.as_str(), low.available), ("sku-1", 15));
        assert_eq!(low.envelope.causation_id, Some(input.envelope().event_id));
        assert_eq!(low.envelope.event_type, LowStock::NAME);
    }

    #[test]
    fn a_zero_adjustment_is_rejected_and_changes_nothing() {
        let input = adjusted(0);
        let mut state = Some(10);
        let mut context = Context::new(input.envelope(), "counter", Timestamp::from_micros(2));
        let error = StockCounter
            .handle(&input, &mut state, &mut context)
            .expect_err("rejected");
        assert!(matches!(error, HandlerError::Rejected { .. }));
        assert_eq!(state, Some(10));
        assert!(context.outputs().is_empty());
    }
}
