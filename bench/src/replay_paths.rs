//! The per-record paths the offline replay harness (`src/bin/replay.rs`) runs, shared with the
//! suite's `instructions` subcommand that runs it under callgrind, so the two agree on names.
//!
//! Also shared: the names of the two functions callgrind toggles collection on. Only
//! instructions executed inside [`MEASURED_FUNCTION`] (one input record's path) are counted, and
//! none inside [`CHECK_FUNCTION`] (the harness checking that record's results): set-up, event
//! generation, warm-up and checks never reach the figure.

/// Demangled name of the function that runs one measured record (`--toggle-collect`).
pub(crate) const MEASURED_FUNCTION: &str = "replay::measured_record";

/// Demangled name of the function that checks a measured record's results; called only from
/// inside [`MEASURED_FUNCTION`], so toggling on its entry and exit turns collection off for it.
pub(crate) const CHECK_FUNCTION: &str = "replay::Verifier::verify";

/// One per-record path of a worker, replayed without Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub(crate) enum ReplayPath {
    /// The no-op hop on `StockAdjusted`: decode, a stateless handler emitting one `LowStock`,
    /// encode (a no-op handler).
    NoopAdjusted,
    /// The no-op hop on `OrderPlaced`: decode, a stateless handler emitting one `LowStock`,
    /// encode.
    NoopOrder,
    /// The inventory order stage on `OrderPlaced`: decode, dedup lookup, handle (one `HOLD` per
    /// SKU), encode the holds, state to the changelog.
    OrderStage,
    /// The inventory stock stage on `SkuCommand` `HOLD`: decode, dedup lookup, handle (one
    /// answer, sometimes a `LowStock`), encode, state to the changelog.
    StockHold,
    /// Decoding `OrderPlaced` only (the codec alone).
    DecodeOrder,
    /// Encoding `OrderPlaced` only (the codec alone).
    EncodeOrder,
}

impl ReplayPath {
    /// Every path, in the order the tables list them.
    pub(crate) const ALL: [Self; 6] = [
        Self::NoopAdjusted,
        Self::NoopOrder,
        Self::OrderStage,
        Self::StockHold,
        Self::DecodeOrder,
        Self::EncodeOrder,
    ];

    /// The name on the command line and in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::NoopAdjusted => "noop-adjusted",
            Self::NoopOrder => "noop-order",
            Self::OrderStage => "order-stage",
            Self::StockHold => "stock-hold",
            Self::DecodeOrder => "decode-order",
            Self::EncodeOrder => "encode-order",
        }
    }

    /// What one measured record goes through, for tables.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::NoopAdjusted => "no-op hop: StockAdjusted -> LowStock",
            Self::NoopOrder => "no-op hop: OrderPlaced -> LowStock",
            Self::OrderStage => "inventory order stage: OrderPlaced -> HOLD per SKU",
            Self::StockHold => "inventory stock stage: SkuCommand HOLD -> answer",
            Self::DecodeOrder => "codec only: decode OrderPlaced",
            Self::EncodeOrder => "codec only: encode OrderPlaced",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn names_are_the_command_line_values() {
        for path in ReplayPath::ALL {
            let parsed = ReplayPath::from_str(path.name(), false).expect("parses");
            assert_eq!(parsed, path);
        }
        assert_eq!(ReplayPath::ALL.len(), ReplayPath::value_variants().len());
    }
}
