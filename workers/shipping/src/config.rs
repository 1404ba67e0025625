//! The shipping worker's own flags: the carrier rules' thresholds and choices, and the label
//! format. Each has an environment variable and a default (the defaults are the rule book in
//! [`crate::rules`]); [`ShippingArgs::handler`] validates them into a handler at start-up.

use retail_events::shipping::{Carrier, LabelFormat, ServiceLevel};

use crate::handler::ShippingHandler;
use crate::rules::{Choice, RuleBook, RulesError, Thresholds};

/// A carrier, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CarrierArg {
    /// PostNord.
    Postnord,
    /// DHL.
    Dhl,
    /// UPS.
    Ups,
    /// DPD.
    Dpd,
}

impl From<CarrierArg> for Carrier {
    fn from(carrier: CarrierArg) -> Self {
        match carrier {
            CarrierArg::Postnord => Carrier::Postnord,
            CarrierArg::Dhl => Carrier::Dhl,
            CarrierArg::Ups => Carrier::Ups,
            CarrierArg::Dpd => Carrier::Dpd,
        }
    }
}

/// A service level, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceArg {
    /// The cheapest, slowest service.
    Economy,
    /// The usual service.
    Standard,
    /// Next-day or faster.
    Express,
}

impl From<ServiceArg> for ServiceLevel {
    fn from(service: ServiceArg) -> Self {
        match service {
            ServiceArg::Economy => ServiceLevel::Economy,
            ServiceArg::Standard => ServiceLevel::Standard,
            ServiceArg::Express => ServiceLevel::Express,
        }
    }
}

/// A label format, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelFormatArg {
    /// Plain UTF-8 text, readable anywhere.
    Text,
    /// ZPL II for Zebra thermal printers.
    Zpl,
}

impl From<LabelFormatArg> for LabelFormat {
    fn from(format: LabelFormatArg) -> Self {
        match format {
            LabelFormatArg::Text => LabelFormat::Text,
            LabelFormatArg::Zpl => LabelFormat::Zpl,
        }
    }
}

/// The shipping worker's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ShippingArgs {
    /// The country shipped from (ISO 3166-1 alpha-2); parcels to it are domestic.
    #[arg(long, env = "SHIPPING_HOME_COUNTRY", default_value = "SE")]
    pub home_country: String,

    /// The heaviest domestic parcel, in grams, that goes with the domestic-light choice.
    #[arg(
        long,
        env = "SHIPPING_DOMESTIC_LIGHT_MAX_GRAMS",
        default_value_t = 20_000
    )]
    pub domestic_light_max_grams: i32,

    /// The heaviest parcel abroad, in grams, that goes with the abroad-light choice.
    #[arg(long, env = "SHIPPING_ABROAD_LIGHT_MAX_GRAMS", default_value_t = 2_000)]
    pub abroad_light_max_grams: i32,

    /// Carrier for express deliveries (any destination and weight).
    #[arg(long, env = "SHIPPING_EXPRESS_CARRIER", value_enum, default_value_t = CarrierArg::Ups)]
    pub express_carrier: CarrierArg,

    /// Service level for express deliveries.
    #[arg(long, env = "SHIPPING_EXPRESS_SERVICE", value_enum, default_value_t = ServiceArg::Express)]
    pub express_service: ServiceArg,

    /// Carrier for light domestic parcels.
    #[arg(long, env = "SHIPPING_DOMESTIC_LIGHT_CARRIER", value_enum, default_value_t = CarrierArg::Postnord)]
    pub domestic_light_carrier: CarrierArg,

    /// Service level for light domestic parcels.
    #[arg(long, env = "SHIPPING_DOMESTIC_LIGHT_SERVICE", value_enum, default_value_t = ServiceArg::Standard)]
    pub domestic_light_service: ServiceArg,

    /// Carrier for heavy domestic parcels.
    #[arg(long, env = "SHIPPING_DOMESTIC_HEAVY_CARRIER", value_enum, default_value_t = CarrierArg::Dhl)]
    pub domestic_heavy_carrier: CarrierArg,

    /// Service level for heavy domestic parcels.
    #[arg(long, env = "SHIPPING_DOMESTIC_HEAVY_SERVICE", value_enum, default_value_t = ServiceArg::Standard)]
    pub domestic_heavy_service: ServiceArg,

    /// Carrier for light parcels abroad.
    #[arg(long, env = "SHIPPING_ABROAD_LIGHT_CARRIER", value_enum, default_value_t = CarrierArg::Dpd)]
    pub abroad_light_carrier: CarrierArg,

    /// Service level for light parcels abroad.
    #[arg(long, env = "SHIPPING_ABROAD_LIGHT_SERVICE", value_enum, default_value_t = ServiceArg::Economy)]
    pub abroad_light_service: ServiceArg,

    /// Carrier for heavy parcels abroad.
    #[arg(long, env = "SHIPPING_ABROAD_HEAVY_CARRIER", value_enum, default_value_t = CarrierArg::Dhl)]
    pub abroad_heavy_carrier: CarrierArg,

    /// Service level for heavy parcels abroad.
    #[arg(long, env = "SHIPPING_ABROAD_HEAVY_SERVICE", value_enum, default_value_t = ServiceArg::Standard)]
    pub abroad_heavy_service: ServiceArg,

    /// Format of the label document in ShipmentCreated.
    #[arg(long, env = "SHIPPING_LABEL_FORMAT", value_enum, default_value_t = LabelFormatArg::Text)]
    pub label_format: LabelFormatArg,
}

impl ShippingArgs {
    /// The thresholds and choices the flags describe.
    pub fn thresholds(&self) -> Thresholds {
        let choice = |carrier: CarrierArg, service: ServiceArg| Choice {
            carrier: carrier.into(),
            service_level: service.into(),
        };
        Thresholds {
            home_country: self.home_country.clone(),
            domestic_light_max_grams: self.domestic_light_max_grams,
            abroad_light_max_grams: self.abroad_light_max_grams,
            express: choice(self.express_carrier, self.express_service),
            domestic_light: choice(self.domestic_light_carrier, self.domestic_light_service),
            domestic_heavy: choice(self.domestic_heavy_carrier, self.domestic_heavy_service),
            abroad_light: choice(self.abroad_light_carrier, self.abroad_light_service),
            abroad_heavy: choice(self.abroad_heavy_carrier, self.abroad_heavy_service),
        }
    }

    /// The handler the flags describe, or why they do not describe a valid rule book.
    pub fn handler(&self) -> Result<ShippingHandler, RulesError> {
        let rules = RuleBook::from_thresholds(&self.thresholds())?;
        tracing::info!(rules = %rules, label_format = ?self.label_format, "shipping rules");
        Ok(ShippingHandler::new(rules, self.label_format.into()))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        shipping: ShippingArgs,
    }

    #[test]
    fn the_defaults_are_the_documented_rule_book() {
        let cli = Cli::try_parse_from(["shipping"]).expect("defaults parse");
        if std::env::vars().any(|(name, _)| name.starts_with("SHIPPING_")) {
            // The environment overrides defaults; nothing to compare against then.
            return;
        }
        assert_eq!(cli.shipping.thresholds(), Thresholds::default());
        assert_eq!(cli.shipping.label_format, LabelFormatArg::Text);
    }

    #[test]
    fn flags_change_the_rules_and_the_label_format() {
        let cli = Cli::try_parse_from([
            "shipping",
            "--home-country",
            "NO",
            "--abroad-light-max-grams",
            "3000",
            "--abroad-light-carrier",
            "postnord",
            "--abroad-light-service",
            "standard",
            "--label-format",
            "zpl",
        ])
        .expect("flags parse");
        let thresholds = cli.shipping.thresholds();
        assert_eq!(thresholds.home_country, "NO");
        assert_eq!(thresholds.abroad_light_max_grams, 3_000);
        assert_eq!(
            thresholds.abroad_light,
            Choice {
                carrier: Carrier::Postnord,
                service_level: ServiceLevel::Standard,
            }
        );
        assert_eq!(cli.shipping.label_format, LabelFormatArg::Zpl);
        assert!(cli.shipping.handler().is_ok());
    }

    #[test]
    fn an_invalid_rule_book_stops_the_worker_with_the_reason() {
        let cli = Cli::try_parse_from(["shipping", "--domestic-light-max-grams=-5"])
            .expect("flags parse");
        assert!(matches!(
            cli.shipping.handler(),
            Err(RulesError::NegativeWeightLimit {
                rule: "domestic-light",
                grams: -5
            })
        ));
    }

    #[test]
    fn an_unknown_carrier_name_is_refused_by_the_parser() {
        assert!(Cli::try_parse_from(["shipping", "--express-carrier", "fedex"]).is_err());
    }
}
