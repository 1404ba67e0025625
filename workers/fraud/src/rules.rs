//! The fraud rules: a pure, configurable score of one order given its customer's history.
//!
//! Nothing here touches Kafka, the clock or randomness: [`CustomerHistory::observe`] records an
//! order in the customer's history and says what the history-based rules need to know, and
//! [`Rules::score`] turns the order and that observation into a score and its signals. The same
//! order and the same history always give the same score, signals and detail strings.
//!
//! The rules, each adding its points when it fires (a rule configured with 0 points is off and
//! never listed):
//! - `HIGH_ORDER_AMOUNT`: the order total is at least [`Rules::high_amount_minor`].
//! - `CUSTOMER_VELOCITY`: more than [`Rules::velocity_max_orders`] orders of the customer, this
//!   one included, whose event times lie in `[t - window, t]`, `t` being this order's event time.
//! - `COUNTRY_MISMATCH`: the billing country is not the shipping country (codes compared
//!   ignoring ASCII case).
//! - `NEW_CUSTOMER_LARGE_ORDER`: the first order of the customer fraud has seen, from an account
//!   younger than [`Rules::new_customer_age`] at the order's event time, of at least
//!   [`Rules::new_customer_amount_minor`].
//!
//! The score is the sum of the points, capped at [`MAX_SCORE`]; the order is flagged when the
//! score reaches [`Rules::threshold`]. Amounts are compared in minor units of the order's own
//! currency, whatever the currency: the thresholds are currency-agnostic.

use std::time::Duration;

use retail_events::Timestamp;
use retail_events::fraud::{FraudCheckRequested, FraudRule, FraudSignal};
use serde::{Deserialize, Serialize};

/// The highest score: the schema's range is 0 to 100.
pub const MAX_SCORE: i32 = 100;

/// The rule settings. [`Default`] gives the documented defaults; the worker builds them from
/// its flags with [`crate::config::FraudConfig::rules`], which validates them. The scoring is
/// total for any values (saturating arithmetic), so a `Rules` built by hand cannot panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Order total, in minor units, from which `HIGH_ORDER_AMOUNT` fires: large orders are the
    /// costliest to lose to fraud.
    pub high_amount_minor: i64,
    /// Points of `HIGH_ORDER_AMOUNT`.
    pub high_amount_points: i32,
    /// Orders per window a customer may place before `CUSTOMER_VELOCITY` fires (it fires from
    /// `velocity_max_orders + 1`): bursts of orders are typical of stolen cards being tried out.
    /// Also bounds the event times kept per customer.
    pub velocity_max_orders: u32,
    /// The sliding window of `CUSTOMER_VELOCITY`, in event time.
    pub velocity_window: Duration,
    /// Points of `CUSTOMER_VELOCITY`.
    pub velocity_points: i32,
    /// Points of `COUNTRY_MISMATCH`: goods shipped away from the card's country are a classic
    /// fraud pattern.
    pub country_mismatch_points: i32,
    /// Accounts younger than this at the order's event time count as new for
    /// `NEW_CUSTOMER_LARGE_ORDER`: fraudsters open an account and order big at once.
    pub new_customer_age: Duration,
    /// Order total, in minor units, from which a new customer's first order is large.
    pub new_customer_amount_minor: i64,
    /// Points of `NEW_CUSTOMER_LARGE_ORDER`.
    pub new_customer_points: i32,
    /// Score from which an order is flagged (score >= threshold).
    pub threshold: i32,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            high_amount_minor: 100_000,
            high_amount_points: 40,
            velocity_max_orders: 5,
            velocity_window: Duration::from_secs(10 * 60),
            velocity_points: 40,
            country_mismatch_points: 25,
            new_customer_age: Duration::from_secs(24 * 60 * 60),
            new_customer_amount_minor: 50_000,
            new_customer_points: 50,
            threshold: 70,
        }
    }
}

impl std::fmt::Display for Rules {
    /// One line for the start-up log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "high_amount_minor={} high_amount_points={} velocity_max_orders={} velocity_window={} \
             velocity_points={} country_mismatch_points={} new_customer_age={} \
             new_customer_amount_minor={} new_customer_points={} threshold={}",
            self.high_amount_minor,
            self.high_amount_points,
            self.velocity_max_orders,
            humantime::format_duration(self.velocity_window),
            self.velocity_points,
            self.country_mismatch_points,
            humantime::format_duration(self.new_customer_age),
            self.new_customer_amount_minor,
            self.new_customer_points,
            self.threshold,
        )
    }
}

/// What fraud remembers about one customer: the state of the customers stage, keyed by
/// customer id.
///
/// Small and bounded: a count and at most [`Rules::velocity_max_orders`] timestamps, under
/// 60 bytes per customer with the defaults (postcard varints; the runtime adds its ledger of
/// recently processed event ids). It is never deleted, and no timer clears it: forgetting it
/// would make the customer's next order a "first order" again. So the store grows with the
/// number of customers fraud has ever seen (one compacted changelog record each), not with
/// the number of orders; times older than the window are dropped at the customer's next order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerHistory {
    /// Orders of the customer scored so far (saturating). Zero before the first: this is how
    /// `NEW_CUSTOMER_LARGE_ORDER` knows an order is the customer's first.
    pub orders_seen: u64,
    /// Event times of the customer's most recent orders, ascending: at most
    /// [`Rules::velocity_max_orders`] of them, none older than one window before the newest.
    /// Enough to decide `CUSTOMER_VELOCITY` exactly for orders that arrive in event-time order
    /// (see [`CustomerHistory::observe`]).
    pub recent_orders: Vec<Timestamp>,
}

/// What the history-based rules need to know about an order, from [`CustomerHistory::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// No earlier order of the customer was seen.
    pub first_order: bool,
    /// Orders of the customer in `[t - window, t]`, this one included, as far as the history
    /// remembers: exact up to `velocity_max_orders + 1`, a lower bound beyond, and a lower bound
    /// for an order that arrives after newer ones (it never over-counts).
    pub orders_in_window: u64,
}

impl CustomerHistory {
    /// Records an order of the customer with event time `at` and returns what the rules need
    /// to know about it, the order itself counted.
    ///
    /// The window count uses event times, not arrival order: an order that arrives late (with
    /// an older time than orders already seen) is counted against the orders in its own window
    /// `[at - window, at]`, and later orders do not count for it.
    ///
    /// Only the newest `velocity_max_orders` times within one window of the newest are kept.
    /// For orders arriving in event-time order that is exact: if `velocity_max_orders` earlier
    /// orders lie in the window of a new order, the newest ones do. A late order may find that
    /// the history forgot some of the older orders of its window: it is then under-counted,
    /// never over-counted, so the rule can miss a burst of late orders but never flags wrongly.
    pub fn observe(&mut self, at: Timestamp, rules: &Rules) -> Observation {
        let window = micros(rules.velocity_window);
        let earliest = at.as_micros().saturating_sub(window);
        let earlier_in_window = self
            .recent_orders
            .iter()
            .filter(|time| (earliest..=at.as_micros()).contains(&time.as_micros()))
            .count();
        let observation = Observation {
            first_order: self.orders_seen == 0,
            orders_in_window: u64::try_from(earlier_in_window)
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        };

        self.orders_seen = self.orders_seen.saturating_add(1);
        // After the equal times, so the vector stays sorted and insertion is deterministic.
        let position = self.recent_orders.partition_point(|time| *time <= at);
        self.recent_orders.insert(position, at);
        self.prune(rules);
        observation
    }

    /// Drops the times no in-order future order can count: those older than one window before
    /// the newest, and all but the newest `velocity_max_orders`.
    fn prune(&mut self, rules: &Rules) {
        let Some(newest) = self.recent_orders.last().copied() else {
            return;
        };
        let horizon = newest
            .as_micros()
            .saturating_sub(micros(rules.velocity_window));
        self.recent_orders
            .retain(|time| time.as_micros() >= horizon);
        let keep = usize::try_from(rules.velocity_max_orders).unwrap_or(usize::MAX);
        let excess = self.recent_orders.len().saturating_sub(keep);
        self.recent_orders.drain(..excess);
        debug_assert!(self.recent_orders.is_sorted());
    }
}

/// The verdict on one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Sum of the fired rules' points, capped at [`MAX_SCORE`].
    pub score: i32,
    /// Every rule that fired, in a fixed order (high amount, velocity, country mismatch, new
    /// customer), with its points and a deterministic detail without personal data.
    pub signals: Vec<FraudSignal>,
    /// `score >= threshold`.
    pub flagged: bool,
}

impl Rules {
    /// Scores `request` given what its customer's history says about it.
    pub fn score(&self, request: &FraudCheckRequested, observation: Observation) -> Assessment {
        let amount = request.order_total.amount_minor;
        let currency = &request.order_total.currency;
        let mut signals = Vec::new();

        if self.high_amount_points > 0 && amount >= self.high_amount_minor {
            signals.push(FraudSignal {
                rule: FraudRule::HighOrderAmount,
                points: self.high_amount_points,
                detail: format!(
                    "order total {amount} {currency} minor units is at least {}",
                    self.high_amount_minor
                ),
            });
        }

        let max_orders = u64::from(self.velocity_max_orders);
        if self.velocity_points > 0 && observation.orders_in_window > max_orders {
            signals.push(FraudSignal {
                rule: FraudRule::CustomerVelocity,
                points: self.velocity_points,
                detail: format!(
                    "at least {} orders of the customer within {} up to this one, more than {max_orders}",
                    observation.orders_in_window,
                    humantime::format_duration(self.velocity_window),
                ),
            });
        }

        let (billing, shipping) = (&request.billing_country, &request.shipping_country);
        if self.country_mismatch_points > 0 && !billing.eq_ignore_ascii_case(shipping) {
            signals.push(FraudSignal {
                rule: FraudRule::CountryMismatch,
                points: self.country_mismatch_points,
                detail: format!("billing country {billing:?} is not shipping country {shipping:?}"),
            });
        }

        let account_age = request
            .envelope
            .occurred_at
            .as_micros()
            .saturating_sub(request.customer_since.as_micros());
        if self.new_customer_points > 0
            && observation.first_order
            && account_age < micros(self.new_customer_age)
            && amount >= self.new_customer_amount_minor
        {
            signals.push(FraudSignal {
                rule: FraudRule::NewCustomerLargeOrder,
                points: self.new_customer_points,
                detail: format!(
                    "first order, from an account {} (new below {}), order total {amount} {currency} minor units is at least {}",
                    describe_age(account_age),
                    humantime::format_duration(self.new_customer_age),
                    self.new_customer_amount_minor,
                ),
            });
        }

        let sum = signals
            .iter()
            .fold(0_i32, |sum, signal| sum.saturating_add(signal.points));
        let score = sum.clamp(0, MAX_SCORE);
        Assessment {
            score,
            signals,
            flagged: score >= self.threshold,
        }
    }
}

/// A duration in whole microseconds, saturating (a window of 292 000 years is "forever").
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// An account age for a detail string, to the second.
fn describe_age(age_micros: i64) -> String {
    match u64::try_from(age_micros) {
        Ok(age) => format!(
            "{} old",
            humantime::format_duration(Duration::from_secs(age / 1_000_000))
        ),
        Err(_) => "created after the order".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use retail_events::common::Money;
    use retail_events::{Envelope, EventId};

    const SECOND: i64 = 1_000_000;
    const MINUTE: i64 = 60 * SECOND;
    const DAY: i64 = 24 * 60 * MINUTE;
    /// An order time far from the epoch, so accounts can be older than the order.
    const NOW: i64 = 1_750_000_000 * SECOND;

    fn request(
        amount: i64,
        billing: &str,
        shipping: &str,
        account_age: i64,
    ) -> FraudCheckRequested {
        FraudCheckRequested {
            envelope: Envelope {
                event_id: EventId::from_u128(1),
                event_type: "FraudCheckRequested".into(),
                occurred_at: Timestamp::from_micros(NOW),
                correlation_id: "order-1".into(),
                causation_id: Some(EventId::from_u128(2)),
                producer: "fraud.orders".into(),
                schema_version: 1,
            },
            customer_id: "customer-1".into(),
            order_id: "order-1".into(),
            customer_since: Timestamp::from_micros(NOW - account_age),
            order_total: Money {
                amount_minor: amount,
                currency: "EUR".into(),
            },
            shipping_country: shipping.into(),
            billing_country: billing.into(),
            line_count: 1,
        }
    }

    /// An order that fires no rule: established customer, small amount, one country.
    fn quiet(amount: i64) -> FraudCheckRequested {
        request(amount, "SE", "SE", 365 * DAY)
    }

    fn seen_before() -> Observation {
        Observation {
            first_order: false,
            orders_in_window: 1,
        }
    }

    fn first() -> Observation {
        Observation {
            first_order: true,
            orders_in_window: 1,
        }
    }

    fn rules_fired(assessment: &Assessment) -> Vec<FraudRule> {
        assessment
            .signals
            .iter()
            .map(|signal| signal.rule)
            .collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let rules = Rules::default();
        assert_eq!(
            rules.to_string(),
            "high_amount_minor=100000 high_amount_points=40 velocity_max_orders=5 \
             velocity_window=10m velocity_points=40 country_mismatch_points=25 \
             new_customer_age=1day new_customer_amount_minor=50000 new_customer_points=50 \
             threshold=70"
        );
    }

    #[test]
    fn an_unremarkable_order_scores_zero_and_is_cleared() {
        let assessment = Rules::default().score(&quiet(20_000), seen_before());
        assert_eq!(
            assessment,
            Assessment {
                score: 0,
                signals: Vec::new(),
                flagged: false
            }
        );
    }

    #[test]
    fn high_order_amount_fires_from_the_threshold_on() {
        let rules = Rules::default();
        let below = rules.score(&quiet(99_999), seen_before());
        assert!(below.signals.is_empty());
        let at = rules.score(&quiet(100_000), seen_before());
        assert_eq!(
            at.signals,
            vec![FraudSignal {
                rule: FraudRule::HighOrderAmount,
                points: 40,
                detail: "order total 100000 EUR minor units is at least 100000".into(),
            }]
        );
        assert_eq!((at.score, at.flagged), (40, false));
        let above = rules.score(&quiet(100_001), seen_before());
        assert_eq!(rules_fired(&above), vec![FraudRule::HighOrderAmount]);
    }

    #[test]
    fn velocity_fires_above_the_maximum_not_at_it() {
        let rules = Rules::default();
        let at_max = Observation {
            first_order: false,
            orders_in_window: 5,
        };
        assert!(rules.score(&quiet(100), at_max).signals.is_empty());
        let above = Observation {
            first_order: false,
            orders_in_window: 6,
        };
        let assessment = rules.score(&quiet(100), above);
        assert_eq!(
            assessment.signals,
            vec![FraudSignal {
                rule: FraudRule::CustomerVelocity,
                points: 40,
                detail: "at least 6 orders of the customer within 10m up to this one, more than 5"
                    .into(),
            }]
        );
        assert_eq!(assessment.score, 40);
    }

    #[test]
    fn country_mismatch_fires_when_the_countries_differ_ignoring_case() {
        let rules = Rules::default();
        let mismatch = rules.score(&request(100, "DE", "SE", 365 * DAY), seen_before());
        assert_eq!(
            mismatch.signals,
            vec![FraudSignal {
                rule: FraudRule::CountryMismatch,
                points: 25,
                detail: "billing country \"DE\" is not shipping country \"SE\"".into(),
            }]
        );
        let same = rules.score(&request(100, "se", "SE", 365 * DAY), seen_before());
        assert!(same.signals.is_empty());
    }

    #[test]
    fn new_customer_large_order_needs_a_first_order_a_young_account_and_a_large_amount() {
        let rules = Rules::default();
        let young = DAY - 1;
        let fired = rules.score(&request(50_000, "SE", "SE", young), first());
        assert_eq!(
            fired.signals,
            vec![FraudSignal {
                rule: FraudRule::NewCustomerLargeOrder,
                points: 50,
                detail: "first order, from an account 23h 59m 59s old (new below 1day), \
                         order total 50000 EUR minor units is at least 50000"
                    .into(),
            }]
        );
        assert_eq!(fired.score, 50);
        // Each condition missing on its own: no signal.
        let not_first = rules.score(&request(50_000, "SE", "SE", young), seen_before());
        assert!(not_first.signals.is_empty());
        let exactly_one_day = rules.score(&request(50_000, "SE", "SE", DAY), first());
        assert!(exactly_one_day.signals.is_empty());
        let small = rules.score(&request(49_999, "SE", "SE", young), first());
        assert!(small.signals.is_empty());
    }

    #[test]
    fn an_account_created_after_the_order_counts_as_new() {
        let assessment = Rules::default().score(&request(60_000, "SE", "SE", -SECOND), first());
        assert_eq!(
            rules_fired(&assessment),
            vec![FraudRule::NewCustomerLargeOrder]
        );
        assert!(
            assessment.signals[0]
                .detail
                .contains("created after the order")
        );
    }

    #[test]
    fn the_score_is_capped_and_the_signals_keep_their_full_points() {
        // The simulator's "brand-new fraudster": 40 + 50 + 25 = 115, capped at 100.
        let assessment = Rules::default().score(&request(150_000, "DE", "SE", 0), first());
        assert_eq!(
            rules_fired(&assessment),
            vec![
                FraudRule::HighOrderAmount,
                FraudRule::CountryMismatch,
                FraudRule::NewCustomerLargeOrder
            ]
        );
        let points: Vec<i32> = assessment.signals.iter().map(|s| s.points).collect();
        assert_eq!(points, vec![40, 25, 50]);
        assert_eq!((assessment.score, assessment.flagged), (100, true));
    }

    #[test]
    fn every_rule_at_once_still_scores_one_hundred() {
        let observation = Observation {
            first_order: true,
            orders_in_window: 9,
        };
        let assessment = Rules::default().score(&request(150_000, "DE", "SE", 0), observation);
        assert_eq!(assessment.signals.len(), 4);
        assert_eq!(assessment.score, MAX_SCORE);
    }

    #[test]
    fn an_order_is_flagged_at_the_threshold_and_cleared_just_below() {
        let rules = Rules {
            threshold: 65,
            ..Rules::default()
        };
        // 40 + 25 = 65: exactly the threshold.
        let at = rules.score(&request(100_000, "DE", "SE", 365 * DAY), seen_before());
        assert_eq!((at.score, at.flagged), (65, true));
        let stricter = Rules {
            threshold: 66,
            ..rules
        };
        let below = stricter.score(&request(100_000, "DE", "SE", 365 * DAY), seen_before());
        assert_eq!((below.score, below.flagged), (65, false));
    }

    #[test]
    fn a_rule_with_zero_points_is_off() {
        let rules = Rules {
            high_amount_points: 0,
            ..Rules::default()
        };
        let assessment = rules.score(&quiet(500_000), seen_before());
        assert!(assessment.signals.is_empty());
        assert_eq!(assessment.score, 0);
    }

    #[test]
    fn configured_points_and_limits_are_used() {
        let rules = Rules {
            high_amount_minor: 10,
            high_amount_points: 7,
            country_mismatch_points: 3,
            ..Rules::default()
        };
        let assessment = rules.score(&request(10, "DE", "SE", 365 * DAY), seen_before());
        assert_eq!(assessment.score, 10);
    }

    // The history.

    fn at_minute(minute: i64) -> Timestamp {
        Timestamp::from_micros(NOW + minute * MINUTE)
    }

    /// Observes orders at the given minutes and returns the window counts.
    fn counts(history: &mut CustomerHistory, rules: &Rules, minutes: &[i64]) -> Vec<u64> {
        minutes
            .iter()
            .map(|minute| history.observe(at_minute(*minute), rules).orders_in_window)
            .collect()
    }

    #[test]
    fn the_first_observation_is_the_first_order_and_later_ones_are_not() {
        let rules = Rules::default();
        let mut history = CustomerHistory::default();
        assert!(history.observe(at_minute(0), &rules).first_order);
        assert!(!history.observe(at_minute(100), &rules).first_order);
        assert!(!history.observe(at_minute(10_000), &rules).first_order);
        assert_eq!(history.orders_seen, 3);
        // Long after the window, the customer is still known: the count is never dropped.
        assert_eq!(history.recent_orders, vec![at_minute(10_000)]);
    }

    #[test]
    fn orders_in_order_are_counted_within_the_window_bounds_included() {
        let rules = Rules::default();
        let mut history = CustomerHistory::default();
        // Window 10m: the order at 10 still sees the one at 0 (inclusive), the one at 11 not.
        assert_eq!(counts(&mut history, &rules, &[0, 10, 11]), vec![1, 2, 2]);
    }

    #[test]
    fn the_sixth_order_in_ten_minutes_fires_velocity_and_the_fifth_does_not() {
        let rules = Rules::default();
        let mut history = CustomerHistory::default();
        let observed = counts(&mut history, &rules, &[0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(observed, vec![1, 2, 3, 4, 5, 6, 6]);
        let fires: Vec<bool> = observed
            .iter()
            .map(|count| *count > u64::from(rules.velocity_max_orders))
            .collect();
        assert_eq!(fires, vec![false, false, false, false, false, true, true]);
        // Bounded: the newest five times, whatever the number of orders.
        assert_eq!(history.recent_orders.len(), 5);
        assert_eq!(history.orders_seen, 7);
    }

    #[test]
    fn a_burst_spread_just_wider_than_the_window_does_not_fire() {
        let rules = Rules::default();
        let mut history = CustomerHistory::default();
        // Six orders over 10m 1us: the sixth's window starts after the first.
        let times = [
            0,
            MINUTE,
            2 * MINUTE,
            3 * MINUTE,
            4 * MINUTE,
            10 * MINUTE + 1,
        ];
        let observed: Vec<u64> = times
            .iter()
            .map(|offset| {
                history
                    .observe(Timestamp::from_micros(NOW + offset), &rules)
                    .orders_in_window
            })
            .collect();
        assert_eq!(observed, vec![1, 2, 3, 4, 5, 5]);
    }

    #[test]
    fn a_late_order_is_counted_in_its_own_window_not_by_arrival() {
        let rules = Rules {
            velocity_max_orders: 2,
            ..Rules::default()
        };
        let mut history = CustomerHistory::default();
        // Two orders at 20 and 21, then one that happened at 5: by arrival it would be the
        // third in a row, but no other order lies in [-5, 5].
        assert_eq!(counts(&mut history, &rules, &[20, 21, 5]), vec![1, 2, 1]);
        // It is more than a window behind the newest, so it is not kept.
        assert_eq!(history.recent_orders, vec![at_minute(20), at_minute(21)]);
        // The next in-order one sees the two recent ones.
        assert_eq!(counts(&mut history, &rules, &[22]), vec![3]);
    }

    #[test]
    fn a_late_order_counts_older_orders_of_its_window_but_not_newer_ones() {
        let rules = Rules::default();
        let mut history = CustomerHistory::default();
        // 15 arrives after 20: its window [5, 15] holds 10, not 20.
        assert_eq!(counts(&mut history, &rules, &[10, 20, 15]), vec![1, 2, 2]);
        assert_eq!(
            history.recent_orders,
            vec![at_minute(10), at_minute(15), at_minute(20)]
        );
        // 20's window [10, 20] now holds 10, 15 and 20: an order at 20 again counts four.
        assert_eq!(counts(&mut history, &rules, &[20]), vec![4]);
    }

    #[test]
    fn orders_at_the_same_time_all_count() {
        let rules = Rules::default();
        let mut history = CustomerHistory::default();
        assert_eq!(counts(&mut history, &rules, &[3, 3, 3]), vec![1, 2, 3]);
    }

    #[test]
    fn the_history_survives_postcard() {
        let mut history = CustomerHistory::default();
        counts(&mut history, &Rules::default(), &[0, 1, 2]);
        // The runtime stores state with postcard, which is not self-describing.
        let bytes = postcard::to_stdvec(&history).expect("encodes");
        let decoded: CustomerHistory = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(decoded, history);
    }

    /// Orders strictly in arrival = event-time order (non-decreasing) and in any order.
    fn times(max_gap_minutes: i64) -> impl Strategy<Value = Vec<i64>> {
        proptest::collection::vec(0..max_gap_minutes * MINUTE, 1..40)
    }

    proptest! {
        #[test]
        fn in_event_time_order_the_velocity_rule_is_exact(
            gaps in times(4),
            max_orders in 1_u32..6,
        ) {
            let rules = Rules { velocity_max_orders: max_orders, ..Rules::default() };
            let window = micros(rules.velocity_window);
            let mut history = CustomerHistory::default();
            let mut all = Vec::new();
            let mut now = NOW;
            for gap in gaps {
                now += gap;
                all.push(now);
                let exact = all.iter().filter(|time| (now - window..=now).contains(*time)).count();
                let observed = history.observe(Timestamp::from_micros(now), &rules);
                let fires = observed.orders_in_window > u64::from(max_orders);
                prop_assert_eq!(fires, exact > max_orders as usize);
                prop_assert!(observed.orders_in_window <= exact as u64);
            }
        }

        #[test]
        fn in_any_order_the_count_never_exceeds_the_truth_and_the_history_stays_bounded(
            offsets in proptest::collection::vec(0..60 * MINUTE, 1..40),
            max_orders in 1_u32..6,
        ) {
            let rules = Rules { velocity_max_orders: max_orders, ..Rules::default() };
            let window = micros(rules.velocity_window);
            let mut history = CustomerHistory::default();
            let mut all = Vec::new();
            for offset in offsets {
                let now = NOW + offset;
                all.push(now);
                let exact = all.iter().filter(|time| (now - window..=now).contains(*time)).count();
                let observed = history.observe(Timestamp::from_micros(now), &rules);
                prop_assert!(observed.orders_in_window >= 1);
                prop_assert!(observed.orders_in_window <= exact as u64);
                prop_assert!(history.recent_orders.len() <= max_orders as usize);
                prop_assert!(history.recent_orders.is_sorted());
            }
            prop_assert_eq!(history.orders_seen, all.len() as u64);
        }

        #[test]
        fn the_score_stays_in_range_and_flagging_follows_the_threshold(
            amount in 0_i64..1_000_000,
            mismatch in any::<bool>(),
            first_order in any::<bool>(),
            orders_in_window in 1_u64..10,
            age in -DAY..3 * DAY,
            threshold in 1_i32..=100,
        ) {
            let rules = Rules { threshold, ..Rules::default() };
            let billing = if mismatch { "DE" } else { "SE" };
            let assessment = rules.score(
                &request(amount, billing, "SE", age),
                Observation { first_order, orders_in_window },
            );
            prop_assert!((0..=MAX_SCORE).contains(&assessment.score));
            prop_assert_eq!(assessment.flagged, assessment.score >= threshold);
            if assessment.flagged {
                prop_assert!(!assessment.signals.is_empty());
            }
        }
    }
}
