//! Which carrier and service level ship a packed order: an ordered list of rules, as data.
//!
//! A [`RuleBook`] is a home country and a list of [`Rule`]s; the first rule whose [`Match`]
//! fits the parcel decides. A rule matches on three facts of an `OrderPacked`: whether the
//! customer chose express delivery, whether the destination is the home country, and the total
//! weight. The book is validated when it is built ([`RuleBook::new`]), so a worker with a
//! mistyped configuration refuses to start instead of dead-lettering orders later:
//! - every rule ships with a real carrier and service level (never `UNKNOWN`);
//! - weight limits are not negative;
//! - no rule is shadowed by an earlier one that matches everything it matches (it could never
//!   apply, which is always a configuration mistake);
//! - every parcel finds a rule: for each delivery speed and destination some rule matches
//!   whatever the weight.
//!
//! The default book ([`RuleBook::from_thresholds`] with [`Thresholds::default`]):
//!
//! | # | when | carrier / service |
//! | --- | --- | --- |
//! | 1 | express delivery, anywhere | UPS / EXPRESS |
//! | 2 | to the home country (SE), at most 20 kg | POSTNORD / STANDARD |
//! | 3 | to the home country, heavier | DHL / STANDARD |
//! | 4 | abroad, at most 2 kg | DPD / ECONOMY |
//! | 5 | abroad, heavier | DHL / STANDARD |

use std::fmt;

use retail_events::common::DeliverySpeed;
use retail_events::shipping::{Carrier, ServiceLevel};

/// Which delivery speeds a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeedMatch {
    /// Every order.
    Any,
    /// Only orders whose customer chose express delivery.
    Express,
}

/// Which destinations a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationMatch {
    /// Every destination.
    Any,
    /// Only the home country.
    Domestic,
    /// Every country but the home country.
    Abroad,
}

/// The conditions of a rule; all of them must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The delivery speed the customer chose.
    pub speed: SpeedMatch,
    /// Where the parcel goes.
    pub destination: DestinationMatch,
    /// The heaviest total weight, in grams, the rule takes (inclusive); `None` takes any weight.
    pub max_weight_grams: Option<i32>,
}

/// A carrier and a service level of that carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Who carries the parcel.
    pub carrier: Carrier,
    /// How fast.
    pub service_level: ServiceLevel,
}

/// One rule: when it applies, and what it chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// A short name for logs and error messages, e.g. `domestic-light`.
    pub name: &'static str,
    /// When the rule applies.
    pub when: Match,
    /// What it chooses.
    pub choice: Choice,
}

/// The facts about a parcel that rules match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parcel<'a> {
    /// The total weight in grams (not negative: the handler rejects negative weights).
    pub weight_grams: i32,
    /// ISO 3166-1 alpha-2 code of the destination, any case.
    pub country_code: &'a str,
    /// The delivery speed the customer chose; `UNKNOWN` counts as standard.
    pub speed: DeliverySpeed,
}

/// The thresholds and choices the default rule book is built from: the worker's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// The country shipped from; parcels to it are domestic.
    pub home_country: String,
    /// The heaviest domestic parcel, in grams, that takes the `domestic_light` choice.
    pub domestic_light_max_grams: i32,
    /// The heaviest parcel abroad, in grams, that takes the `abroad_light` choice.
    pub abroad_light_max_grams: i32,
    /// Express delivery, any destination and weight.
    pub express: Choice,
    /// Domestic, at most `domestic_light_max_grams`.
    pub domestic_light: Choice,
    /// Domestic, heavier.
    pub domestic_heavy: Choice,
    /// Abroad, at most `abroad_light_max_grams`.
    pub abroad_light: Choice,
    /// Abroad, heavier.
    pub abroad_heavy: Choice,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            home_country: "SE".to_owned(),
            domestic_light_max_grams: 20_000,
            abroad_light_max_grams: 2_000,
            express: Choice {
                carrier: Carrier::Ups,
                service_level: ServiceLevel::Express,
            },
            domestic_light: Choice {
                carrier: Carrier::Postnord,
                service_level: ServiceLevel::Standard,
            },
            domestic_heavy: Choice {
                carrier: Carrier::Dhl,
                service_level: ServiceLevel::Standard,
            },
            abroad_light: Choice {
                carrier: Carrier::Dpd,
                service_level: ServiceLevel::Economy,
            },
            abroad_heavy: Choice {
                carrier: Carrier::Dhl,
                service_level: ServiceLevel::Standard,
            },
        }
    }
}

/// Why a rule book cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// The home country is not two ASCII letters.
    #[error(
        "the home country must be an ISO 3166-1 alpha-2 code such as SE (--home-country, SHIPPING_HOME_COUNTRY), got {0:?}"
    )]
    InvalidHomeCountry(String),
    /// A rule would book a carrier or service level that does not exist.
    #[error(
        "rule {rule} chooses carrier {carrier:?} and service level {service_level:?}; UNKNOWN is not a choice"
    )]
    UnknownChoice {
        /// The rule's name.
        rule: &'static str,
        /// Its carrier.
        carrier: Carrier,
        /// Its service level.
        service_level: ServiceLevel,
    },
    /// A weight limit below zero matches nothing.
    #[error("rule {rule} has a negative weight limit of {grams} g")]
    NegativeWeightLimit {
        /// The rule's name.
        rule: &'static str,
        /// The limit.
        grams: i32,
    },
    /// A rule can never apply: an earlier one matches every parcel it matches.
    #[error("rule {rule} can never apply: rule {by} before it matches every parcel it matches")]
    Shadowed {
        /// The rule that never applies.
        rule: &'static str,
        /// The earlier rule that takes its parcels.
        by: &'static str,
    },
    /// Some parcels would find no rule.
    #[error(
        "no rule matches {speed} parcels {destination} of every weight; add a rule without a weight limit for them"
    )]
    Incomplete {
        /// `standard` or `express`.
        speed: &'static str,
        /// `to the home country` or `abroad`.
        destination: &'static str,
    },
}

/// The rules in force: validated, so every parcel finds exactly one choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleBook {
    /// Upper-case ISO 3166-1 alpha-2 code of the country shipped from.
    home_country: String,
    /// Tried in order; the first match wins.
    rules: Vec<Rule>,
}

impl RuleBook {
    /// A rule book from a home country and rules, if it is valid (see the module docs).
    pub fn new(home_country: &str, rules: Vec<Rule>) -> Result<Self, RulesError> {
        let home_country = home_country.trim();
        if home_country.len() != 2 || !home_country.bytes().all(|byte| byte.is_ascii_alphabetic()) {
            return Err(RulesError::InvalidHomeCountry(home_country.to_owned()));
        }
        for (index, rule) in rules.iter().enumerate() {
            if rule.choice.carrier == Carrier::Unknown
                || rule.choice.service_level == ServiceLevel::Unknown
            {
                return Err(RulesError::UnknownChoice {
                    rule: rule.name,
                    carrier: rule.choice.carrier,
                    service_level: rule.choice.service_level,
                });
            }
            if let Some(grams) = rule.when.max_weight_grams
                && grams < 0
            {
                return Err(RulesError::NegativeWeightLimit {
                    rule: rule.name,
                    grams,
                });
            }
            if let Some(earlier) = rules[..index]
                .iter()
                .find(|earlier| covers(&earlier.when, &rule.when))
            {
                return Err(RulesError::Shadowed {
                    rule: rule.name,
                    by: earlier.name,
                });
            }
        }
        for (express, speed) in [(false, "standard"), (true, "express")] {
            for (domestic, destination) in [(true, "to the home country"), (false, "abroad")] {
                let complete = rules.iter().any(|rule| {
                    rule.when.max_weight_grams.is_none()
                        && speed_matches(rule.when.speed, express)
                        && destination_matches(rule.when.destination, domestic)
                });
                if !complete {
                    return Err(RulesError::Incomplete { speed, destination });
                }
            }
        }
        Ok(Self {
            home_country: home_country.to_ascii_uppercase(),
            rules,
        })
    }

    /// The five-rule book of the module docs, with the given thresholds and choices.
    pub fn from_thresholds(thresholds: &Thresholds) -> Result<Self, RulesError> {
        let rule = |name, speed, destination, max_weight_grams, choice| Rule {
            name,
            when: Match {
                speed,
                destination,
                max_weight_grams,
            },
            choice,
        };
        Self::new(
            &thresholds.home_country,
            vec![
                rule(
                    "express",
                    SpeedMatch::Express,
                    DestinationMatch::Any,
                    None,
                    thresholds.express,
                ),
                rule(
                    "domestic-light",
                    SpeedMatch::Any,
                    DestinationMatch::Domestic,
                    Some(thresholds.domestic_light_max_grams),
                    thresholds.domestic_light,
                ),
                rule(
                    "domestic-heavy",
                    SpeedMatch::Any,
                    DestinationMatch::Domestic,
                    None,
                    thresholds.domestic_heavy,
                ),
                rule(
                    "abroad-light",
                    SpeedMatch::Any,
                    DestinationMatch::Abroad,
                    Some(thresholds.abroad_light_max_grams),
                    thresholds.abroad_light,
                ),
                rule(
                    "abroad-heavy",
                    SpeedMatch::Any,
                    DestinationMatch::Abroad,
                    None,
                    thresholds.abroad_heavy,
                ),
            ],
        )
    }

    /// The upper-case code of the country shipped from.
    pub fn home_country(&self) -> &str {
        &self.home_country
    }

    /// The rules, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule that matches `parcel`. Always `Some` for a parcel with a non-negative
    /// weight: validation guarantees a rule without a weight limit for every speed and
    /// destination.
    pub fn choose(&self, parcel: &Parcel<'_>) -> Option<&Rule> {
        let express = parcel.speed == DeliverySpeed::Express;
        let domestic = parcel
            .country_code
            .trim()
            .eq_ignore_ascii_case(&self.home_country);
        self.rules.iter().find(|rule| {
            speed_matches(rule.when.speed, express)
                && destination_matches(rule.when.destination, domestic)
                && rule
                    .when
                    .max_weight_grams
                    .is_none_or(|max| parcel.weight_grams <= max)
        })
    }
}

/// The rules, one per line, for the start-up log.
impl fmt::Display for RuleBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "home country {}", self.home_country)?;
        for rule in &self.rules {
            write!(
                f,
                "; {}: {:?}/{:?}",
                rule.name, rule.choice.carrier, rule.choice.service_level
            )?;
            if let Some(grams) = rule.when.max_weight_grams {
                write!(f, " up to {grams} g")?;
            }
        }
        Ok(())
    }
}

fn speed_matches(speed: SpeedMatch, express: bool) -> bool {
    match speed {
        SpeedMatch::Any => true,
        SpeedMatch::Express => express,
    }
}

fn destination_matches(destination: DestinationMatch, domestic: bool) -> bool {
    match destination {
        DestinationMatch::Any => true,
        DestinationMatch::Domestic => domestic,
        DestinationMatch::Abroad => !domestic,
    }
}

/// Whether every parcel `inner` matches is also matched by `outer`.
fn covers(outer: &Match, inner: &Match) -> bool {
    let speed = outer.speed == SpeedMatch::Any || outer.speed == inner.speed;
    let destination =
        outer.destination == DestinationMatch::Any || outer.destination == inner.destination;
    let weight = match (outer.max_weight_grams, inner.max_weight_grams) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(outer_max), Some(inner_max)) => inner_max <= outer_max,
    };
    speed && destination && weight
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> RuleBook {
        RuleBook::from_thresholds(&Thresholds::default()).expect("the default rules are valid")
    }

    fn choose(
        weight_grams: i32,
        country_code: &str,
        speed: DeliverySpeed,
    ) -> (&'static str, Carrier, ServiceLevel) {
        let book = book();
        let rule = book
            .choose(&Parcel {
                weight_grams,
                country_code,
                speed,
            })
            .expect("every parcel finds a rule");
        (rule.name, rule.choice.carrier, rule.choice.service_level)
    }

    #[test]
    fn express_goes_with_ups_express_wherever_and_however_heavy() {
        for (weight, country) in [(100, "SE"), (50_000, "SE"), (100, "DE"), (50_000, "US")] {
            assert_eq!(
                choose(weight, country, DeliverySpeed::Express),
                ("express", Carrier::Ups, ServiceLevel::Express),
                "{weight} g to {country}"
            );
        }
    }

    #[test]
    fn domestic_up_to_twenty_kilos_goes_with_postnord_standard() {
        for weight in [0, 1, 20_000] {
            assert_eq!(
                choose(weight, "SE", DeliverySpeed::Standard),
                ("domestic-light", Carrier::Postnord, ServiceLevel::Standard)
            );
        }
    }

    #[test]
    fn domestic_heavier_than_twenty_kilos_goes_with_dhl_standard() {
        assert_eq!(
            choose(20_001, "SE", DeliverySpeed::Standard),
            ("domestic-heavy", Carrier::Dhl, ServiceLevel::Standard)
        );
    }

    #[test]
    fn abroad_up_to_two_kilos_goes_with_dpd_economy() {
        for weight in [0, 2_000] {
            assert_eq!(
                choose(weight, "DE", DeliverySpeed::Standard),
                ("abroad-light", Carrier::Dpd, ServiceLevel::Economy)
            );
        }
    }

    #[test]
    fn abroad_heavier_than_two_kilos_goes_with_dhl_standard() {
        assert_eq!(
            choose(2_001, "NO", DeliverySpeed::Standard),
            ("abroad-heavy", Carrier::Dhl, ServiceLevel::Standard)
        );
    }

    #[test]
    fn an_unknown_speed_counts_as_standard_and_country_case_does_not_matter() {
        assert_eq!(
            choose(500, " se ", DeliverySpeed::Unknown),
            ("domestic-light", Carrier::Postnord, ServiceLevel::Standard)
        );
    }

    #[test]
    fn thresholds_and_home_country_are_configurable() {
        let book = RuleBook::from_thresholds(&Thresholds {
            home_country: "de".to_owned(),
            abroad_light_max_grams: 5_000,
            ..Thresholds::default()
        })
        .expect("valid");
        assert_eq!(book.home_country(), "DE");
        let parcel = |country_code| Parcel {
            weight_grams: 4_000,
            country_code,
            speed: DeliverySpeed::Standard,
        };
        assert_eq!(
            book.choose(&parcel("DE")).map(|rule| rule.name),
            Some("domestic-light")
        );
        assert_eq!(
            book.choose(&parcel("SE")).map(|rule| rule.name),
            Some("abroad-light")
        );
    }

    #[test]
    fn a_home_country_that_is_not_two_letters_is_refused() {
        for bad in ["", "SWE", "S1"] {
            assert_eq!(
                RuleBook::from_thresholds(&Thresholds {
                    home_country: bad.to_owned(),
                    ..Thresholds::default()
                }),
                Err(RulesError::InvalidHomeCountry(bad.to_owned()))
            );
        }
    }

    #[test]
    fn an_unknown_carrier_or_service_is_refused() {
        let result = RuleBook::from_thresholds(&Thresholds {
            abroad_light: Choice {
                carrier: Carrier::Unknown,
                service_level: ServiceLevel::Economy,
            },
            ..Thresholds::default()
        });
        assert_eq!(
            result,
            Err(RulesError::UnknownChoice {
                rule: "abroad-light",
                carrier: Carrier::Unknown,
                service_level: ServiceLevel::Economy,
            })
        );
    }

    #[test]
    fn a_negative_weight_limit_is_refused() {
        let result = RuleBook::from_thresholds(&Thresholds {
            domestic_light_max_grams: -1,
            ..Thresholds::default()
        });
        assert_eq!(
            result,
            Err(RulesError::NegativeWeightLimit {
                rule: "domestic-light",
                grams: -1,
            })
        );
    }

    #[test]
    fn a_shadowed_rule_is_refused() {
        let any = Choice {
            carrier: Carrier::Dhl,
            service_level: ServiceLevel::Standard,
        };
        let rules = vec![
            Rule {
                name: "everything",
                when: Match {
                    speed: SpeedMatch::Any,
                    destination: DestinationMatch::Any,
                    max_weight_grams: None,
                },
                choice: any,
            },
            Rule {
                name: "light-domestic",
                when: Match {
                    speed: SpeedMatch::Any,
                    destination: DestinationMatch::Domestic,
                    max_weight_grams: Some(1_000),
                },
                choice: any,
            },
        ];
        assert_eq!(
            RuleBook::new("SE", rules),
            Err(RulesError::Shadowed {
                rule: "light-domestic",
                by: "everything",
            })
        );
    }

    #[test]
    fn a_book_that_leaves_parcels_without_a_rule_is_refused() {
        let rules = vec![Rule {
            name: "domestic",
            when: Match {
                speed: SpeedMatch::Any,
                destination: DestinationMatch::Domestic,
                max_weight_grams: None,
            },
            choice: Choice {
                carrier: Carrier::Postnord,
                service_level: ServiceLevel::Standard,
            },
        }];
        assert_eq!(
            RuleBook::new("SE", rules),
            Err(RulesError::Incomplete {
                speed: "standard",
                destination: "abroad",
            })
        );
    }
}
