//! The fraud worker's own flags: the rule settings, each with an environment variable and a
//! default, validated at start-up into [`Rules`] with messages that name the flag and its
//! variable.
//!
//! The runtime's flags (brokers, registry, group, ...) come from
//! [`retail_runtime::RuntimeConfig`], flattened next to these in the binary's parser.

use std::time::Duration;

use crate::rules::{MAX_SCORE, Rules};

/// The fraud rules' settings. Amounts are integer minor units of the order's currency
/// (cents for EUR); durations are humantime (`10m`, `1d`, `36h`).
#[derive(Debug, Clone, clap::Args)]
pub struct FraudConfig {
    /// Order total (minor units) from which HIGH_ORDER_AMOUNT fires.
    #[arg(
        long = "fraud-high-amount-minor",
        env = "FRAUD_HIGH_AMOUNT_MINOR",
        default_value_t = 100_000
    )]
    pub high_amount_minor: i64,

    /// Points HIGH_ORDER_AMOUNT adds (0 to 100; 0 turns the rule off).
    #[arg(
        long = "fraud-high-amount-points",
        env = "FRAUD_HIGH_AMOUNT_POINTS",
        default_value_t = 40
    )]
    pub high_amount_points: i32,

    /// Orders of one customer allowed within the velocity window; CUSTOMER_VELOCITY fires on
    /// the next one. At least 1.
    #[arg(
        long = "fraud-velocity-max-orders",
        env = "FRAUD_VELOCITY_MAX_ORDERS",
        default_value_t = 5
    )]
    pub velocity_max_orders: u32,

    /// Sliding window of CUSTOMER_VELOCITY, in event time (the orders' times, not arrival).
    #[arg(
        long = "fraud-velocity-window",
        env = "FRAUD_VELOCITY_WINDOW",
        default_value = "10m",
        value_parser = humantime::parse_duration,
    )]
    pub velocity_window: Duration,

    /// Points CUSTOMER_VELOCITY adds (0 to 100; 0 turns the rule off).
    #[arg(
        long = "fraud-velocity-points",
        env = "FRAUD_VELOCITY_POINTS",
        default_value_t = 40
    )]
    pub velocity_points: i32,

    /// Points COUNTRY_MISMATCH (billing country is not shipping country) adds (0 to 100; 0
    /// turns the rule off).
    #[arg(
        long = "fraud-country-mismatch-points",
        env = "FRAUD_COUNTRY_MISMATCH_POINTS",
        default_value_t = 25
    )]
    pub country_mismatch_points: i32,

    /// Accounts younger than this when they order are new for NEW_CUSTOMER_LARGE_ORDER.
    #[arg(
        long = "fraud-new-customer-age",
        env = "FRAUD_NEW_CUSTOMER_AGE",
        default_value = "1d",
        value_parser = humantime::parse_duration,
    )]
    pub new_customer_age: Duration,

    /// Order total (minor units) from which a new customer's first order is large.
    #[arg(
        long = "fraud-new-customer-amount-minor",
        env = "FRAUD_NEW_CUSTOMER_AMOUNT_MINOR",
        default_value_t = 50_000
    )]
    pub new_customer_amount_minor: i64,

    /// Points NEW_CUSTOMER_LARGE_ORDER adds (0 to 100; 0 turns the rule off).
    #[arg(
        long = "fraud-new-customer-points",
        env = "FRAUD_NEW_CUSTOMER_POINTS",
        default_value_t = 50
    )]
    pub new_customer_points: i32,

    /// Score (1 to 100) from which an order is flagged: FraudFlagged when score >= threshold,
    /// else FraudCleared.
    #[arg(
        long = "fraud-threshold",
        env = "FRAUD_THRESHOLD",
        default_value_t = 70
    )]
    pub threshold: i32,
}

/// A fraud setting that cannot work, found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A rule's points outside the score's range.
    #[error("{flag} ({env}) is {value}: points must be between 0 and {MAX_SCORE}")]
    PointsOutOfRange {
        /// The flag, e.g. `--fraud-velocity-points`.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// The value given.
        value: i32,
    },

    /// A threshold no score reaches, or one every order reaches.
    #[error("--fraud-threshold (FRAUD_THRESHOLD) is {value}: it must be between 1 and {MAX_SCORE}")]
    ThresholdOutOfRange {
        /// The value given.
        value: i32,
    },

    /// A negative amount threshold, which every order would reach.
    #[error("{flag} ({env}) is {value}: an amount threshold cannot be negative")]
    NegativeAmount {
        /// The flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// The value given.
        value: i64,
    },

    /// No order allowed per window: every order would be "too many".
    #[error(
        "--fraud-velocity-max-orders (FRAUD_VELOCITY_MAX_ORDERS) must be at least 1 (set --fraud-velocity-points to 0 to turn the rule off)"
    )]
    ZeroVelocityMaxOrders,

    /// A window shorter than the timestamps' resolution.
    #[error("--fraud-velocity-window (FRAUD_VELOCITY_WINDOW) must be at least 1us")]
    EmptyVelocityWindow,
}

impl FraudConfig {
    /// The rules these settings describe, or the first setting that cannot work.
    pub fn rules(&self) -> Result<Rules, ConfigError> {
        let points = [
            (
                "--fraud-high-amount-points",
                "FRAUD_HIGH_AMOUNT_POINTS",
                self.high_amount_points,
            ),
            (
                "--fraud-velocity-points",
                "FRAUD_VELOCITY_POINTS",
                self.velocity_points,
            ),
            (
                "--fraud-country-mismatch-points",
                "FRAUD_COUNTRY_MISMATCH_POINTS",
                self.country_mismatch_points,
            ),
            (
                "--fraud-new-customer-points",
                "FRAUD_NEW_CUSTOMER_POINTS",
                self.new_customer_points,
            ),
        ];
        if let Some((flag, env, value)) = points
            .into_iter()
            .find(|(_, _, value)| !(0..=MAX_SCORE).contains(value))
        {
            return Err(ConfigError::PointsOutOfRange { flag, env, value });
        }
        if !(1..=MAX_SCORE).contains(&self.threshold) {
            return Err(ConfigError::ThresholdOutOfRange {
                value: self.threshold,
            });
        }
        let amounts = [
            (
                "--fraud-high-amount-minor",
                "FRAUD_HIGH_AMOUNT_MINOR",
                self.high_amount_minor,
            ),
            (
                "--fraud-new-customer-amount-minor",
                "FRAUD_NEW_CUSTOMER_AMOUNT_MINOR",
                self.new_customer_amount_minor,
            ),
        ];
        if let Some((flag, env, value)) = amounts.into_iter().find(|(_, _, value)| *value < 0) {
            return Err(ConfigError::NegativeAmount { flag, env, value });
        }
        if self.velocity_max_orders == 0 {
            return Err(ConfigError::ZeroVelocityMaxOrders);
        }
        if self.velocity_window < Duration::from_micros(1) {
            return Err(ConfigError::EmptyVelocityWindow);
        }
        Ok(Rules {
            high_amount_minor: self.high_amount_minor,
            high_amount_points: self.high_amount_points,
            velocity_max_orders: self.velocity_max_orders,
            velocity_window: self.velocity_window,
            velocity_points: self.velocity_points,
            country_mismatch_points: self.country_mismatch_points,
            new_customer_age: self.new_customer_age,
            new_customer_amount_minor: self.new_customer_amount_minor,
            new_customer_points: self.new_customer_points,
            threshold: self.threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        fraud: FraudConfig,
    }

    /// Parses `args` ignoring the environment, so a `FRAUD_*` variable of the machine running
    /// the tests cannot change the defaults under test.
    fn parse(args: &[&str]) -> Result<FraudConfig, clap::Error> {
        let command = TestCli::command().mut_args(|arg| arg.env(None::<&str>));
        let matches =
            command.try_get_matches_from(std::iter::once("fraud").chain(args.iter().copied()))?;
        Ok(TestCli::from_arg_matches(&matches)?.fraud)
    }

    fn rules(args: &[&str]) -> Result<Rules, ConfigError> {
        parse(args).expect("parses").rules()
    }

    #[test]
    fn the_defaults_are_the_documented_rules() {
        assert_eq!(rules(&[]), Ok(Rules::default()));
    }

    #[test]
    fn every_flag_sets_its_rule() {
        let parsed = rules(&[
            "--fraud-high-amount-minor",
            "1",
            "--fraud-high-amount-points",
            "2",
            "--fraud-velocity-max-orders",
            "3",
            "--fraud-velocity-window",
            "4s",
            "--fraud-velocity-points",
            "5",
            "--fraud-country-mismatch-points",
            "6",
            "--fraud-new-customer-age",
            "7h",
            "--fraud-new-customer-amount-minor",
            "8",
            "--fraud-new-customer-points",
            "9",
            "--fraud-threshold",
            "10",
        ]);
        assert_eq!(
            parsed,
            Ok(Rules {
                high_amount_minor: 1,
                high_amount_points: 2,
                velocity_max_orders: 3,
                velocity_window: Duration::from_secs(4),
                velocity_points: 5,
                country_mismatch_points: 6,
                new_customer_age: Duration::from_secs(7 * 3600),
                new_customer_amount_minor: 8,
                new_customer_points: 9,
                threshold: 10,
            })
        );
    }

    #[test]
    fn every_flag_has_its_environment_variable() {
        let command = TestCli::command();
        let envs: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            envs,
            vec![
                "FRAUD_HIGH_AMOUNT_MINOR",
                "FRAUD_HIGH_AMOUNT_POINTS",
                "FRAUD_VELOCITY_MAX_ORDERS",
                "FRAUD_VELOCITY_WINDOW",
                "FRAUD_VELOCITY_POINTS",
                "FRAUD_COUNTRY_MISMATCH_POINTS",
                "FRAUD_NEW_CUSTOMER_AGE",
                "FRAUD_NEW_CUSTOMER_AMOUNT_MINOR",
                "FRAUD_NEW_CUSTOMER_POINTS",
                "FRAUD_THRESHOLD",
            ]
        );
    }

    #[test]
    fn points_outside_zero_to_one_hundred_are_refused_naming_the_flag() {
        assert_eq!(
            rules(&["--fraud-velocity-points", "101"]),
            Err(ConfigError::PointsOutOfRange {
                flag: "--fraud-velocity-points",
                env: "FRAUD_VELOCITY_POINTS",
                value: 101,
            })
        );
        assert_eq!(
            rules(&["--fraud-country-mismatch-points=-1"]),
            Err(ConfigError::PointsOutOfRange {
                flag: "--fraud-country-mismatch-points",
                env: "FRAUD_COUNTRY_MISMATCH_POINTS",
                value: -1,
            })
        );
        assert!(rules(&["--fraud-new-customer-points", "0"]).is_ok());
        assert!(rules(&["--fraud-high-amount-points", "100"]).is_ok());
    }

    #[test]
    fn the_threshold_must_be_reachable_and_not_trivial() {
        assert_eq!(
            rules(&["--fraud-threshold", "0"]),
            Err(ConfigError::ThresholdOutOfRange { value: 0 })
        );
        assert_eq!(
            rules(&["--fraud-threshold", "101"]),
            Err(ConfigError::ThresholdOutOfRange { value: 101 })
        );
        assert!(rules(&["--fraud-threshold", "1"]).is_ok());
        assert!(rules(&["--fraud-threshold", "100"]).is_ok());
    }

    #[test]
    fn negative_amounts_an_empty_window_and_zero_orders_are_refused() {
        assert_eq!(
            rules(&["--fraud-new-customer-amount-minor=-5"]),
            Err(ConfigError::NegativeAmount {
                flag: "--fraud-new-customer-amount-minor",
                env: "FRAUD_NEW_CUSTOMER_AMOUNT_MINOR",
                value: -5,
            })
        );
        assert_eq!(
            rules(&["--fraud-velocity-window", "0s"]),
            Err(ConfigError::EmptyVelocityWindow)
        );
        assert_eq!(
            rules(&["--fraud-velocity-max-orders", "0"]),
            Err(ConfigError::ZeroVelocityMaxOrders)
        );
        assert!(rules(&["--fraud-high-amount-minor", "0"]).is_ok());
    }

    #[test]
    fn errors_name_the_flag_and_the_variable() {
        let error = rules(&["--fraud-high-amount-points", "300"]).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "--fraud-high-amount-points (FRAUD_HIGH_AMOUNT_POINTS) is 300: points must be between 0 and 100"
        );
    }

    #[test]
    fn a_malformed_duration_is_a_parse_error() {
        assert!(parse(&["--fraud-velocity-window", "ten minutes"]).is_err());
    }
}
