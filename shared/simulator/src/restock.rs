//! The warehouse's answer to inventory's `LowStock` alerts: a `StockAdjusted` restock of a fixed
//! amount for SKUs the warehouse still stocks, once per alert.
//!
//! Pure: the Kafka side hands it decoded alerts and the time, and sends what it returns. An
//! alert delivered twice (inventory re-sent it after a crash, with the same event id) is
//! answered once. The restock's ids are derived from the alert's id, so even an answer sent
//! twice carries one id and inventory applies it once.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use retail_events::inventory::LowStock;
use retail_events::warehouse::{StockAdjusted, StockAdjustmentReason};
use retail_events::{Envelope, EventId, EventType, Timestamp};

use crate::plan::{WAREHOUSE, WAREHOUSE_ID};

/// Restocks sent for one SKU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestockTally {
    /// Units sent, in total.
    pub units: i64,
    /// `StockAdjusted` events sent.
    pub restocks: u64,
}

/// What the warehouse does with one `LowStock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestockDecision {
    /// Send this restock.
    Restock(StockAdjusted),
    /// The alert was answered already.
    Duplicate,
    /// The SKU is not restocked (scarce, discontinued, or not this run's).
    NotRestockable,
}

/// Decides the restocks and counts them.
#[derive(Debug, Clone)]
pub struct Restocker {
    /// SKUs the warehouse restocks.
    restockable: BTreeSet<String>,
    /// Units per restock.
    amount: i32,
    /// Alerts answered, so a re-delivered alert is not answered again.
    answered: HashSet<EventId>,
    /// Restocks per SKU, for the summary.
    tallies: BTreeMap<String, RestockTally>,
}

impl Restocker {
    /// A warehouse that restocks `restockable` SKUs by `amount` units (> 0) per alert.
    pub fn new<S: Into<String>>(restockable: impl IntoIterator<Item = S>, amount: i32) -> Self {
        debug_assert!(amount > 0, "validated at start-up");
        Self {
            restockable: restockable.into_iter().map(Into::into).collect(),
            amount,
            answered: HashSet::new(),
            tallies: BTreeMap::new(),
        }
    }

    /// The answer to `alert`, received at `now`.
    pub fn decide(&mut self, alert: &LowStock, now: Timestamp) -> RestockDecision {
        if !self.restockable.contains(&alert.sku) {
            return RestockDecision::NotRestockable;
        }
        if !self.answered.insert(alert.envelope.event_id) {
            return RestockDecision::Duplicate;
        }
        let event_id = EventId::derived(alert.envelope.event_id, StockAdjusted::NAME, "restock");
        let adjustment_id = event_id.to_string();
        let mut envelope =
            Envelope::originating::<StockAdjusted>(adjustment_id.clone(), WAREHOUSE, now);
        envelope.event_id = event_id;
        let tally = self.tallies.entry(alert.sku.clone()).or_default();
        tally.units += i64::from(self.amount);
        tally.restocks += 1;
        RestockDecision::Restock(StockAdjusted {
            envelope,
            adjustment_id,
            warehouse_id: WAREHOUSE_ID.to_owned(),
            sku: alert.sku.clone(),
            quantity_delta: self.amount,
            reason: StockAdjustmentReason::Restock,
        })
    }

    /// Restocks decided so far, per SKU.
    pub fn tallies(&self) -> &BTreeMap<String, RestockTally> {
        &self.tallies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: u128, sku: &str) -> LowStock {
        LowStock {
            envelope: Envelope {
                event_id: EventId::from_u128(id),
                event_type: "LowStock".into(),
                occurred_at: Timestamp::from_micros(10),
                correlation_id: "adj-1".into(),
                causation_id: None,
                producer: "inventory".into(),
                schema_version: 1,
            },
            sku: sku.into(),
            available: 2,
            threshold: 5,
        }
    }

    fn restocker() -> Restocker {
        Restocker::new(["HOME-MUG-001", "KITC-PAN-008"], 40)
    }

    #[test]
    fn a_low_restockable_sku_is_restocked_by_the_amount() {
        let mut warehouse = restocker();
        let now = Timestamp::from_micros(99);
        let RestockDecision::Restock(restock) = warehouse.decide(&alert(1, "HOME-MUG-001"), now)
        else {
            panic!("expected a restock");
        };
        assert_eq!(restock.sku, "HOME-MUG-001");
        assert_eq!(restock.quantity_delta, 40);
        assert_eq!(restock.reason, StockAdjustmentReason::Restock);
        assert_eq!(restock.warehouse_id, WAREHOUSE_ID);
        assert_eq!(restock.envelope.event_type, "StockAdjusted");
        assert_eq!(restock.envelope.producer, "warehouse");
        assert_eq!(restock.envelope.occurred_at, now);
        assert_eq!(restock.envelope.correlation_id, restock.adjustment_id);
        assert_eq!(
            restock.envelope.event_id,
            EventId::derived(EventId::from_u128(1), "StockAdjusted", "restock")
        );
        assert_eq!(
            warehouse.tallies().get("HOME-MUG-001"),
            Some(&RestockTally {
                units: 40,
                restocks: 1
            })
        );
    }

    #[test]
    fn a_redelivered_alert_is_answered_once() {
        let mut warehouse = restocker();
        let now = Timestamp::from_micros(5);
        assert!(matches!(
            warehouse.decide(&alert(1, "HOME-MUG-001"), now),
            RestockDecision::Restock(_)
        ));
        assert_eq!(
            warehouse.decide(&alert(1, "HOME-MUG-001"), now),
            RestockDecision::Duplicate
        );
        // A new alert for the same SKU is a new shortage: answered, with another id.
        let RestockDecision::Restock(second) = warehouse.decide(&alert(2, "HOME-MUG-001"), now)
        else {
            panic!("expected a second restock");
        };
        assert_eq!(
            second.envelope.event_id,
            EventId::derived(EventId::from_u128(2), "StockAdjusted", "restock")
        );
        assert_eq!(
            warehouse.tallies().get("HOME-MUG-001"),
            Some(&RestockTally {
                units: 80,
                restocks: 2
            })
        );
    }

    #[test]
    fn scarce_discontinued_and_unknown_skus_are_not_restocked() {
        let mut warehouse = restocker();
        let now = Timestamp::from_micros(5);
        for sku in ["LTD-VIN-201", "OLD-RAD-301", "SOMEONE-ELSES"] {
            assert_eq!(
                warehouse.decide(&alert(7, sku), now),
                RestockDecision::NotRestockable,
                "{sku}"
            );
        }
        assert!(warehouse.tallies().is_empty());
        // Refusing an alert does not mark it answered for a SKU that is restockable.
        assert!(matches!(
            warehouse.decide(&alert(7, "KITC-PAN-008"), now),
            RestockDecision::Restock(_)
        ));
    }
}
