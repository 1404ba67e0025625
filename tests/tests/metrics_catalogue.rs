//! The metrics catalogue (`deploy/metrics.md`) against the metrics the code declares. What the
//! running workers export is compared at the end of the saga run (tests/tests/saga.rs).

use retail_integration_tests::metrics_catalogue::{compare_declared, parse, path};
use retail_runtime::telemetry::{METRICS, MetricInfo};

#[test]
fn the_catalogue_lists_every_declared_metric_with_its_type_and_labels() {
    let markdown = std::fs::read_to_string(path()).expect("deploy/metrics.md");
    let rows = parse(&markdown).expect("the catalogue parses");
    let declared: Vec<&MetricInfo> = METRICS
        .iter()
        .chain(fulfilment::METRICS)
        .chain(notification::handler::METRICS)
        .collect();
    let problems = compare_declared(&rows, &declared);
    assert!(problems.is_empty(), "deploy/metrics.md: {problems:#?}");
}
