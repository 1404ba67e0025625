//! The run's final figures: printed when it stops and written as JSON with `--summary-json`
//! (the test of the run command reads that file).
//!
//! Stock balance per SKU compares inventory's state at the end with its state at the start
//! (both from the stock stage's changelog) and the warehouse's adjustments in between:
//! `(available + held + shipped)` grew by exactly the units put in, the units inventory counts
//! as shipped grew by exactly the shipments' lines, nothing is held once every order has
//! ended, and nothing is negative.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::observe::Figures;

/// One SKU's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuBalance {
    pub sku: String,
    /// Units the warehouse put in during the run (initial stock and restocks).
    pub stocked: i64,
    pub available: i64,
    pub held: i64,
    /// Units inventory counts as shipped during the run.
    pub shipped: i64,
    /// Units in the run's shipments.
    pub shipment_units: i64,
    pub balanced: bool,
}

/// A child process and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExit {
    pub name: String,
    pub pid: u32,
    /// The exit status as text (`exit status: 0`, `signal: 9 (SIGKILL)`).
    pub exit: String,
    /// It exited with status 0 after SIGTERM (or on its own), without SIGKILL.
    pub clean: bool,
}

/// Everything the run reports at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub broker: String,
    pub bootstrap_servers: String,
    pub schema_registry_url: String,
    pub log_dir: String,
    /// From the simulator's start to the stop, seconds.
    pub elapsed_secs: f64,
    /// Building (or finding) the binaries, seconds.
    pub build_secs: f64,
    /// From the built binaries to the simulator's start (broker, registry, topics, schemas,
    /// five ready workers), seconds.
    pub startup_secs: f64,
    /// Orders the simulator says it sent, if it ran.
    pub simulator_orders_sent: Option<u64>,
    pub orders_placed: u64,
    pub orders_shipped: u64,
    pub orders_cancelled: u64,
    pub cancelled_by_reason: BTreeMap<String, u64>,
    pub orders_not_terminal: u64,
    /// Orders with more than one distinct terminal event (a saga bug if not 0).
    pub orders_multiple_terminal: u64,
    /// Orders that ended per second over the run.
    pub throughput_orders_per_sec: f64,
    pub latency_p50_ms: Option<u32>,
    pub latency_p99_ms: Option<u32>,
    pub latency_max_ms: Option<u32>,
    /// Dead-lettered records per worker (from its last /metrics).
    pub dead_letters: BTreeMap<String, u64>,
    /// Consumer lag per worker at the stop (from its last /metrics).
    pub consumer_lag: BTreeMap<String, u64>,
    pub stock: Vec<SkuBalance>,
    pub all_terminal: bool,
    pub stock_balanced: bool,
    /// Records on the observed topics that did not decode.
    pub undecodable_records: u64,
    pub processes: Vec<ProcessExit>,
}

/// The per-SKU balance of the module docs.
pub fn stock_balance(
    start: &BTreeMap<String, inventory::SkuState>,
    end: &BTreeMap<String, inventory::SkuState>,
    stocked: &BTreeMap<String, i64>,
    shipment_units: &BTreeMap<String, i64>,
    all_terminal: bool,
) -> Vec<SkuBalance> {
    let mut skus: Vec<&String> = stocked
        .keys()
        .chain(shipment_units.keys())
        .chain(end.keys())
        .collect();
    skus.sort();
    skus.dedup();
    skus.into_iter()
        .map(|sku| {
            let before = start.get(sku).cloned().unwrap_or_default();
            let after = end.get(sku).cloned().unwrap_or_default();
            let total =
                |state: &inventory::SkuState| state.available + state.held() + state.shipped;
            let put_in = stocked.get(sku).copied().unwrap_or(0);
            let shipped = after.shipped - before.shipped;
            let in_shipments = shipment_units.get(sku).copied().unwrap_or(0);
            let balanced = total(&after) - total(&before) == put_in
                && shipped == in_shipments
                && after.available >= 0
                && (!all_terminal || after.held() == 0);
            SkuBalance {
                sku: sku.clone(),
                stocked: put_in,
                available: after.available,
                held: after.held(),
                shipped,
                shipment_units: in_shipments,
                balanced,
            }
        })
        .collect()
}

impl Summary {
    /// Fills the order figures from the observer's.
    pub fn set_figures(&mut self, figures: &Figures) {
        self.orders_placed = figures.placed;
        self.orders_shipped = figures.shipped;
        self.orders_cancelled = figures.cancelled_total();
        self.cancelled_by_reason = figures.cancelled.clone();
        self.orders_not_terminal = figures.in_flight;
        self.orders_multiple_terminal = figures.multiple_terminal;
        self.latency_p50_ms = figures.latency_p50_ms;
        self.latency_p99_ms = figures.latency_p99_ms;
        self.latency_max_ms = figures.latency_max_ms;
        self.all_terminal = figures.in_flight == 0 && figures.multiple_terminal == 0;
    }

    /// The summary as the terminal shows it.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let ms = |value: Option<u32>| value.map_or("-".to_owned(), |ms| format!("{ms} ms"));
        let _ = writeln!(text, "\n=== summary ===");
        let _ = writeln!(
            text,
            "orders placed {}  shipped {}  cancelled {}  not terminal {}  (over {:.0} s, {:.1} orders/s)",
            self.orders_placed,
            self.orders_shipped,
            self.orders_cancelled,
            self.orders_not_terminal,
            self.elapsed_secs,
            self.throughput_orders_per_sec
        );
        if !self.cancelled_by_reason.is_empty() {
            let reasons: Vec<String> = self
                .cancelled_by_reason
                .iter()
                .map(|(reason, count)| format!("{reason} {count}"))
                .collect();
            let _ = writeln!(text, "cancelled by reason: {}", reasons.join(", "));
        }
        let _ = writeln!(
            text,
            "saga latency p50 {}  p99 {}  max {}",
            ms(self.latency_p50_ms),
            ms(self.latency_p99_ms),
            ms(self.latency_max_ms)
        );
        let dead: Vec<String> = self
            .dead_letters
            .iter()
            .map(|(worker, count)| format!("{worker} {count}"))
            .collect();
        let _ = writeln!(text, "dead letters: {}", dead.join(", "));
        let unbalanced: Vec<&str> = self
            .stock
            .iter()
            .filter(|sku| !sku.balanced)
            .map(|sku| sku.sku.as_str())
            .collect();
        let _ = writeln!(
            text,
            "stock: {} SKUs, {}",
            self.stock.len(),
            if unbalanced.is_empty() {
                "all balanced".to_owned()
            } else {
                format!("NOT balanced: {}", unbalanced.join(", "))
            }
        );
        let unclean: Vec<String> = self
            .processes
            .iter()
            .filter(|process| !process.clean)
            .map(|process| format!("{} ({})", process.name, process.exit))
            .collect();
        let _ = writeln!(
            text,
            "processes: {} stopped{}",
            self.processes.len(),
            if unclean.is_empty() {
                ", all cleanly".to_owned()
            } else {
                format!("; not cleanly: {}", unclean.join(", "))
            }
        );
        let _ = writeln!(text, "logs: {}", self.log_dir);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(available: i64, held: i32, shipped: i64) -> inventory::SkuState {
        let mut state = inventory::SkuState {
            available,
            shipped,
            ..Default::default()
        };
        if held > 0 {
            state.holds.insert("order-1".into(), held);
        }
        state
    }

    #[test]
    fn a_sku_balances_when_what_came_in_is_available_held_or_shipped() {
        let start = BTreeMap::new();
        let end = BTreeMap::from([("A".to_owned(), state(7, 0, 3))]);
        let stocked = BTreeMap::from([("A".to_owned(), 10)]);
        let shipments = BTreeMap::from([("A".to_owned(), 3)]);
        let balance = stock_balance(&start, &end, &stocked, &shipments, true);
        assert!(balance[0].balanced, "{balance:?}");

        let lost = BTreeMap::from([("A".to_owned(), state(6, 0, 3))]);
        assert!(!stock_balance(&start, &lost, &stocked, &shipments, true)[0].balanced);

        let held = BTreeMap::from([("A".to_owned(), state(5, 2, 3))]);
        assert!(stock_balance(&start, &held, &stocked, &shipments, false)[0].balanced);
        assert!(!stock_balance(&start, &held, &stocked, &shipments, true)[0].balanced);
    }

    #[test]
    fn earlier_state_is_subtracted() {
        let start = BTreeMap::from([("A".to_owned(), state(5, 0, 5))]);
        let end = BTreeMap::from([("A".to_owned(), state(8, 0, 7))]);
        let stocked = BTreeMap::from([("A".to_owned(), 5)]);
        let shipments = BTreeMap::from([("A".to_owned(), 2)]);
        assert!(stock_balance(&start, &end, &stocked, &shipments, true)[0].balanced);
    }
}
