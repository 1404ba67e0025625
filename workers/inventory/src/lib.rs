//! The inventory worker: keeps available, held (reserved) and shipped stock per SKU, and
//! reserves every line of an order or none, never overselling, with any number of instances and
//! across crashes.
//!
//! # Partitioning: why two stages
//! Orders arrive keyed by order id, but stock must be changed by exactly one owner per SKU, or
//! two instances could both sell the last unit. An order's lines span SKUs owned by different
//! partitions, so one order cannot be reserved in one place. The worker therefore runs two
//! stages ([`retail_runtime::Stage`]), each its own consumer group, connected by two internal
//! topics:
//!
//! - the **order stage** ([`OrderStage`], state per order id) reads `storefront.orders.v1`,
//!   `fulfilment.orders.v1`, `shipping.shipments.v1` and the answers on
//!   `inventory.sku-holds.v1`. For an order it sends one `HOLD` per SKU to
//!   `inventory.sku-commands.v1`, re-keyed by SKU; once every SKU has answered it emits
//!   `StockReserved` (all held) or `StockRejected` (naming the short lines) and releases what was
//!   held. On `OrderCancelled` it releases (`RELEASE`) and announces `StockReleased`; on
//!   `ShipmentCreated` it turns the holds into shipped units (`SHIP`).
//! - the **stock stage** ([`StockStage`], state per SKU) reads `warehouse.stock-adjustments.v1`
//!   and `inventory.sku-commands.v1`, both keyed by SKU and co-partitioned, so every change of one
//!   SKU's stock is made by one instance, one record at a time, in partition order. A hold is
//!   granted only if enough units are available, so available stock never goes below zero. It
//!   answers holds on `inventory.sku-holds.v1` (keyed by order id, back to the owner of the
//!   order) and announces `LowStock` when available stock falls below the threshold.
//!
//! Holds are per (SKU, order) and idempotent: a second hold of the same order does not take more
//! units, a release or a ship acts on what the order holds, if anything, and a hold of an order
//! whose hold was already released or shipped (a replay of the order stage's history after a
//! crash) takes nothing. Together with the
//! runtime's effectively-once processing (deterministic ids, deduplication, state and outputs
//! written in order), a crash or a rebalance at any point neither loses nor doubles a hold.
//! While an order's holds are pending, its held units are unavailable to other orders; an order
//! that is then rejected releases them, so "all or none" is reached in a few hops, never by
//! selling what is not there.
//!
//! # Memory
//! The stock stage keeps one entry per SKU, with the holds of the orders in flight and the orders
//! closed within `--closed-order-memory` (every change of a SKU rewrites its changelog record,
//! so a SKU with very many orders in flight makes large records); the order stage
//! one per order in flight, plus finished orders for `--order-retention`, so late or duplicate
//! events of a finished order (a second cancellation, a shipment after a release) find it.

mod orders;
mod stock;

pub use orders::{OrderPhase, OrderStage, OrderState};
pub use stock::{SkuState, StockStage};

use std::time::Duration;

/// The inventory worker's own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct InventoryConfig {
    /// Available units below which a SKU is announced as low on stock (`LowStock`), once per
    /// crossing.
    #[arg(
        long,
        env = "INVENTORY_LOW_STOCK_THRESHOLD",
        default_value_t = 10,
        value_parser = clap::value_parser!(i32).range(0..),
    )]
    pub low_stock_threshold: i32,

    /// How long a finished order (reserved and shipped, rejected or released) is remembered, so
    /// late and duplicate events about it change nothing.
    #[arg(
        long,
        env = "INVENTORY_ORDER_RETENTION",
        default_value = "7d",
        value_parser = humantime::parse_duration,
    )]
    pub order_retention: Duration,

    /// How long the stock stage remembers, per SKU, the orders it answered that hold nothing
    /// (refused, released, shipped), so that a hold of one of them replayed after a crash of the
    /// order stage takes nothing (see `SkuState::closed`). Should exceed the time an order
    /// stage takes to come back after a crash.
    #[arg(
        long,
        env = "INVENTORY_CLOSED_ORDER_MEMORY",
        default_value = "10m",
        value_parser = humantime::parse_duration,
    )]
    pub closed_order_memory: Duration,

    /// At most this many such orders are remembered per SKU: every change of a SKU rewrites its
    /// changelog record, which this bounds (about 50 bytes per order).
    #[arg(
        long,
        env = "INVENTORY_CLOSED_ORDER_LIMIT",
        default_value_t = 256,
        value_parser = clap::value_parser!(u16).range(1..),
    )]
    pub closed_order_limit: u16,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        inventory: InventoryConfig,
    }

    #[test]
    fn flags_have_defaults_and_are_validated() {
        Cli::command().debug_assert();
        let defaults = Cli::try_parse_from(["inventory"])
            .expect("defaults")
            .inventory;
        assert_eq!(defaults.low_stock_threshold, 10);
        assert_eq!(defaults.order_retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(defaults.closed_order_memory, Duration::from_secs(600));
        assert_eq!(defaults.closed_order_limit, 256);
        for bad in [
            ["inventory", "--low-stock-threshold", "-1"],
            ["inventory", "--closed-order-limit", "0"],
            ["inventory", "--order-retention", "soon"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
