//! The metrics catalogue (`deploy/metrics.md`) read as data, and the comparisons that keep it
//! true: against the code's own metric lists, and against what running workers export.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use retail_runtime::telemetry::MetricInfo;

/// The catalogue's path in the repository.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/metrics.md")
}

/// One row of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    pub labels: BTreeSet<String>,
    /// The workers (process names) exporting it; `None` for all.
    pub exported_by: Option<BTreeSet<String>>,
    /// Exported by each of them in every run that processed records.
    pub always: bool,
}

impl Row {
    /// Whether `worker` exports it.
    pub fn exported_by(&self, worker: &str) -> bool {
        self.exported_by
            .as_ref()
            .is_none_or(|workers| workers.contains(worker))
    }
}

/// The catalogue's rows: every table line whose first cell is a metric name in backticks.
pub fn parse(markdown: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (number, line) in markdown.lines().enumerate() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = rest.split('|').map(str::trim).collect();
        let [name, kind, labels, exported_by, appears, ..] = cells.as_slice() else {
            return Err(format!("line {}: too few cells: {line}", number + 1));
        };
        let name = name.trim_end_matches('`');
        if !["counter", "gauge", "histogram"].contains(kind) {
            return Err(format!(
                "line {}: {name}: unknown type {kind:?}",
                number + 1
            ));
        }
        let list = |cell: &str| -> BTreeSet<String> {
            cell.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        };
        rows.push(Row {
            name: name.to_owned(),
            kind: (*kind).to_owned(),
            labels: list(labels),
            exported_by: (*exported_by != "all").then(|| list(exported_by)),
            always: *appears == "always",
        });
    }
    let mut names = BTreeSet::new();
    for row in &rows {
        if !names.insert(row.name.clone()) {
            return Err(format!("{} is listed twice", row.name));
        }
    }
    Ok(rows)
}

/// What one scrape exports: metric family -> (type, label names), histograms under their base
/// name without `le`.
pub type Exported = BTreeMap<String, (String, BTreeSet<String>)>;

/// Parses a Prometheus text exposition.
pub fn exported(exposition: &str) -> Result<Exported, String> {
    let scrape =
        prometheus_parse::Scrape::parse(exposition.lines().map(|line| Ok(line.to_owned())))
            .map_err(|error| format!("not a Prometheus exposition: {error}"))?;
    let mut families = Exported::new();
    for sample in scrape.samples {
        let kind = match sample.value {
            prometheus_parse::Value::Counter(_) => "counter",
            prometheus_parse::Value::Gauge(_) => "gauge",
            prometheus_parse::Value::Histogram(_) => "histogram",
            prometheus_parse::Value::Summary(_) => "summary",
            prometheus_parse::Value::Untyped(_) => "untyped",
        };
        let labels: BTreeSet<String> = sample
            .labels
            .keys()
            .filter(|name| *name != "le")
            .cloned()
            .collect();
        let entry = families
            .entry(sample.metric.clone())
            .or_insert_with(|| (kind.to_owned(), BTreeSet::new()));
        entry.1.extend(labels);
    }
    // The parser types a histogram's `_sum` and `_count` series as untyped families of their own.
    let histograms: Vec<String> = families
        .iter()
        .filter(|(_, (kind, _))| kind == "histogram")
        .map(|(name, _)| name.clone())
        .collect();
    for name in histograms {
        for suffix in ["_sum", "_count"] {
            families.remove(&format!("{name}{suffix}"));
        }
    }
    Ok(families)
}

/// Differences between the catalogue and what `worker` exported.
pub fn compare_scrape(rows: &[Row], worker: &str, exported: &Exported) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, (kind, labels)) in exported {
        match rows.iter().find(|row| row.name == *name) {
            None => problems.push(format!(
                "{worker} exports {name}, which is not in the catalogue"
            )),
            Some(row) => {
                if !row.exported_by(worker) {
                    problems.push(format!(
                        "{worker} exports {name}, but the catalogue does not name {worker} under \"Exported by\""
                    ));
                }
                if row.kind != *kind {
                    problems.push(format!(
                        "{name}: {worker} exports a {kind}, the catalogue says {}",
                        row.kind
                    ));
                }
                if row.labels != *labels {
                    problems.push(format!(
                        "{name}: {worker} exports labels {labels:?}, the catalogue says {:?}",
                        row.labels
                    ));
                }
            }
        }
    }
    for row in rows {
        if row.always && row.exported_by(worker) && !exported.contains_key(&row.name) {
            problems.push(format!(
                "{worker} does not export {}, which the catalogue says it always does",
                row.name
            ));
        }
    }
    problems
}

/// Differences between the catalogue and the metrics the code declares (`declared`: the
/// runtime's list and each worker's own). Rows for `process_*` come from the metrics-process
/// crate and are not declared by the code.
pub fn compare_declared(rows: &[Row], declared: &[&MetricInfo]) -> Vec<String> {
    let mut problems = Vec::new();
    for info in declared {
        match rows.iter().find(|row| row.name == info.name) {
            None => problems.push(format!(
                "{} is declared in code but not in the catalogue",
                info.name
            )),
            Some(row) => {
                let labels: BTreeSet<String> = info
                    .labels
                    .iter()
                    .map(|label| (*label).to_owned())
                    .collect();
                if row.kind != info.kind || row.labels != labels {
                    problems.push(format!(
                        "{}: the code declares a {} with labels {labels:?}, the catalogue a {} with {:?}",
                        info.name, info.kind, row.kind, row.labels
                    ));
                }
            }
        }
    }
    for row in rows {
        if !row.name.starts_with("process_") && !declared.iter().any(|info| info.name == row.name) {
            problems.push(format!(
                "{} is in the catalogue but declared nowhere in code",
                row.name
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
| Metric | Type | Labels | Exported by | Appears | Meaning | When |
|---|---|---|---|---|---|---|
| `a_total` | counter | worker, topic | all | always | x | y |
| `b_seconds` | histogram | channel | notification | when a message goes | x | y |
";

    #[test]
    fn rows_are_read_from_the_tables() {
        let rows = parse(DOC).expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "a_total");
        assert!(rows[0].always && rows[0].exported_by("shipping"));
        assert_eq!(rows[1].kind, "histogram");
        assert!(!rows[1].always);
        assert!(rows[1].exported_by("notification") && !rows[1].exported_by("fraud"));
        assert!(parse("| `x` | meter | | all | always | | |").is_err());
        assert!(parse(&format!("{DOC}{}", DOC.lines().nth(2).expect("row"))).is_err());
    }

    #[test]
    fn a_scrape_is_compared_both_ways() {
        let rows = parse(DOC).expect("parses");
        let exposition = "\
# TYPE a_total counter
a_total{worker=\"w\",topic=\"t\"} 1
# TYPE b_seconds histogram
b_seconds_bucket{channel=\"file\",le=\"0.5\"} 1
b_seconds_bucket{channel=\"file\",le=\"+Inf\"} 1
b_seconds_sum{channel=\"file\"} 0.1
b_seconds_count{channel=\"file\"} 1
";
        let exported = exported(exposition).expect("parses");
        let problems = compare_scrape(&rows, "notification", &exported);
        assert!(problems.is_empty(), "{problems:?} {exported:?}");
        // b is not the fraud worker's.
        assert_eq!(compare_scrape(&rows, "fraud", &exported).len(), 1);
        // a missing "always" metric, an unknown one, a wrong label set.
        let wrong = exported_of(
            "# TYPE c gauge\nc 1\n# TYPE b_seconds histogram\nb_seconds_count{x=\"1\"} 1\n",
        );
        let problems = compare_scrape(&rows, "notification", &wrong);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    fn exported_of(text: &str) -> Exported {
        exported(text).expect("parses")
    }

    #[test]
    fn declared_metrics_are_compared_both_ways() {
        let rows = parse(DOC).expect("parses");
        let a = MetricInfo {
            name: "a_total",
            kind: "counter",
            labels: &["worker", "topic"],
            description: "",
        };
        let b = MetricInfo {
            name: "b_seconds",
            kind: "histogram",
            labels: &["channel"],
            description: "",
        };
        assert!(compare_declared(&rows, &[&a, &b]).is_empty());
        assert_eq!(compare_declared(&rows, &[&a]).len(), 1);
        let b_wrong = MetricInfo { labels: &[], ..b };
        assert_eq!(compare_declared(&rows, &[&a, &b_wrong]).len(), 1);
    }
}
