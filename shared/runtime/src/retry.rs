//! Bounded exponential back-off with jitter, for retrying a record whose handler failed in a
//! way that may succeed later (a webhook timed out, a dependency was briefly down).
//!
//! Pure: the caller passes the random number generator, so tests use a seeded one and the engine
//! decides where the sleeping happens. The bound matters because the consumer thread blocks
//! while it retries a record and must poll again within `max.poll.interval.ms`;
//! [`Backoff::worst_case_total`] is what startup validation compares against that interval.

use std::time::Duration;

/// How long to wait between attempts at a failing record, and how many attempts to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure; each further failure doubles it.
    pub initial: Duration,
    /// The cap on a single delay, so a long retry series does not sleep for minutes at a time.
    pub max: Duration,
    /// The total number of attempts, the first one included: `1` means never retry. After this
    /// many failures the record is dead-lettered.
    pub max_attempts: u32,
}

impl Backoff {
    /// Delay before retry number `attempt` (1-based: the delay after the first failure is
    /// attempt 1), or `None` when attempts are exhausted (`attempt >= max_attempts`).
    ///
    /// Exponential: `initial * 2^(attempt-1)` capped at `max`, with jitter drawn uniformly from
    /// `[delay/2, delay]`. Keeping at least half the delay (rather than "full jitter" from zero)
    /// keeps a retry series from hammering a struggling dependency with near-zero waits, while
    /// the random half still spreads out the retries of many workers that failed together.
    pub fn delay(&self, attempt: u32, rng: &mut impl rand::Rng) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let ceiling = self.undithered(attempt);
        // Nanoseconds fit a u64 for delays up to ~584 years; saturate rather than wrap beyond.
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let floor_nanos = ceiling_nanos / 2;
        Some(Duration::from_nanos(
            rng.random_range(floor_nanos..=ceiling_nanos),
        ))
    }

    /// Upper bound of the total time spent sleeping over all retries: the sum of the delays
    /// before jitter, which only ever shortens them.
    pub fn worst_case_total(&self) -> Duration {
        let retries = self.max_attempts.saturating_sub(1);
        let mut total = Duration::ZERO;
        for attempt in 1..=retries {
            let delay = self.undithered(attempt);
            if delay == self.undithered(attempt.saturating_add(1)) {
                // The delays stopped growing (capped at `max`, or the doubling saturated): every
                // later one is the same, so add them in one step instead of looping up to
                // u32::MAX times for a large attempt count.
                let remaining = retries - attempt + 1;
                return total.saturating_add(delay.saturating_mul(remaining));
            }
            total = total.saturating_add(delay);
        }
        total
    }

    /// `initial * 2^(attempt-1)` capped at `max`, saturating instead of overflowing.
    fn undithered(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(exponent).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            max_attempts: 6,
        }
    }

    #[test]
    fn delays_stay_between_half_and_full_exponential_value() {
        let mut rng = StdRng::seed_from_u64(7);
        let policy = backoff();
        for _ in 0..200 {
            for (attempt, expected_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1600)] {
                let delay = policy.delay(attempt, &mut rng);
                let ceiling = Duration::from_millis(expected_ms);
                let Some(delay) = delay else {
                    panic!("attempt {attempt} of 6 must have a delay");
                };
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "attempt {attempt}: {delay:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
    }

    #[test]
    fn jitter_actually_varies() {
        let mut rng = StdRng::seed_from_u64(1);
        let policy = backoff();
        let delays: std::collections::HashSet<_> =
            (0..20).filter_map(|_| policy.delay(3, &mut rng)).collect();
        assert!(delays.len() > 1, "20 draws gave one value: {delays:?}");
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let policy = backoff();
        let mut first = StdRng::seed_from_u64(42);
        let mut second = StdRng::seed_from_u64(42);
        for attempt in 1..6 {
            assert_eq!(
                policy.delay(attempt, &mut first),
                policy.delay(attempt, &mut second)
            );
        }
    }

    #[test]
    fn delay_is_capped_at_max() {
        let mut rng = StdRng::seed_from_u64(3);
        let policy = Backoff {
            max_attempts: u32::MAX,
            ..backoff()
        };
        for attempt in [7, 8, 31, 32, 33, 64, 1000, u32::MAX - 1] {
            let Some(delay) = policy.delay(attempt, &mut rng) else {
                panic!("attempt {attempt} must have a delay");
            };
            assert!(
                delay <= policy.max && delay >= policy.max / 2,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn attempts_are_exhausted_at_max_attempts() {
        let mut rng = StdRng::seed_from_u64(0);
        let policy = backoff();
        assert!(policy.delay(5, &mut rng).is_some());
        assert_eq!(policy.delay(6, &mut rng), None);
        assert_eq!(policy.delay(7, &mut rng), None);

        let never_retry = Backoff {
            max_attempts: 1,
            ..backoff()
        };
        assert_eq!(never_retry.delay(1, &mut rng), None);
    }

    #[test]
    fn worst_case_is_the_sum_of_uncapped_then_capped_delays() {
        // 100 + 200 + 400 + 800 + 1600 ms.
        assert_eq!(backoff().worst_case_total(), Duration::from_millis(3100));

        // 100 + 200 + 400 + 800 + 1600 + 3200 + 5000 + 5000 ms.
        let longer = Backoff {
            max_attempts: 9,
            ..backoff()
        };
        assert_eq!(longer.worst_case_total(), Duration::from_millis(16_300));

        let never_retry = Backoff {
            max_attempts: 1,
            ..backoff()
        };
        assert_eq!(never_retry.worst_case_total(), Duration::ZERO);
        let zero_attempts = Backoff {
            max_attempts: 0,
            ..backoff()
        };
        assert_eq!(zero_attempts.worst_case_total(), Duration::ZERO);
    }

    #[test]
    fn worst_case_bounds_every_drawn_series() {
        let policy = backoff();
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..100 {
            let slept: Duration = (1..).map_while(|a| policy.delay(a, &mut rng)).sum();
            assert!(slept <= policy.worst_case_total());
        }
    }

    #[test]
    fn worst_case_does_not_overflow_or_loop_forever() {
        let policy = Backoff {
            initial: Duration::from_secs(3600),
            max: Duration::MAX,
            max_attempts: u32::MAX,
        };
        assert_eq!(policy.worst_case_total(), Duration::MAX);
        let capped = Backoff {
            max_attempts: u32::MAX,
            ..backoff()
        };
        assert!(capped.worst_case_total() > Duration::from_secs(5 * 1_000_000));
    }
}
