//! Each worker's `/metrics`, reduced to what the view shows: consumer lag and dead-lettered
//! records (summed over the worker's topics, partitions and stages).

use std::time::Duration;

/// A worker's figures from its last answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    /// `worker_consumer_lag_records`, summed.
    pub lag: u64,
    /// `worker_dead_lettered_records_total`, summed.
    pub dead_lettered: u64,
    /// Whether the last scrape got an answer.
    pub up: bool,
}

/// Sums the samples of `name` in a Prometheus text exposition.
pub fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            // `name{labels} value` or `name value`, not a longer name sharing the prefix.
            let value = if rest.starts_with('{') {
                rest.rsplit_once('}')?.1
            } else if rest.starts_with(' ') {
                rest
            } else {
                return None;
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .filter(|value| value.is_finite())
        .sum()
}

/// Scrapes `http://<addr>/metrics`.
pub async fn scrape(client: &reqwest::Client, addr: &str) -> WorkerMetrics {
    let response = client
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    let Ok(response) = response else {
        return WorkerMetrics::default();
    };
    let Ok(text) = response.text().await else {
        return WorkerMetrics::default();
    };
    WorkerMetrics {
        lag: sum_metric(&text, "worker_consumer_lag_records").max(0.0) as u64,
        dead_lettered: sum_metric(&text, "worker_dead_lettered_records_total").max(0.0) as u64,
        up: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_labelled_sample_of_the_exact_name() {
        let text = "# HELP worker_consumer_lag_records lag\n\
                    # TYPE worker_consumer_lag_records gauge\n\
                    worker_consumer_lag_records{worker=\"inventory\",partition=\"0\"} 3\n\
                    worker_consumer_lag_records{worker=\"inventory\",partition=\"1\"} 4\n\
                    worker_consumer_lag_records_other 100\n\
                    worker_dead_lettered_records_total{worker=\"inventory\",reason=\"x\"} 2\n";
        assert_eq!(sum_metric(text, "worker_consumer_lag_records"), 7.0);
        assert_eq!(sum_metric(text, "worker_dead_lettered_records_total"), 2.0);
        assert_eq!(sum_metric(text, "worker_fatal_errors_total"), 0.0);
    }
}
