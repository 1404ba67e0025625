//! The Grafana dashboards and Prometheus alert rules in `deploy/` against the metrics catalogue
//! (`deploy/metrics.md`, itself checked against what the running workers export in the saga
//! test): every PromQL expression parses and uses only exported metrics and their labels; every
//! alert has a severity, a summary, a description and a runbook section; and the rules pass
//! their `promtool test rules` unit tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use retail_integration_tests::metrics_catalogue::{self, Row};

/// Metrics Prometheus itself adds for every scrape target.
const SYNTHETIC: &[&str] = &["up"];
/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn catalogue() -> Vec<Row> {
    let markdown = std::fs::read_to_string(metrics_catalogue::path()).expect("deploy/metrics.md");
    metrics_catalogue::parse(&markdown).expect("the catalogue parses")
}

/// The metric names and label names an expression uses.
#[derive(Debug, Default)]
struct Used {
    metrics: BTreeSet<String>,
    /// Labels in matchers, `by`/`without` and `on`/`ignoring`/`group_*` clauses.
    labels: BTreeSet<String>,
}

impl ExprVisitor for Used {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let selector = match expr {
            Expr::VectorSelector(selector) => Some(selector),
            Expr::MatrixSelector(matrix) => Some(&matrix.vs),
            _ => None,
        };
        if let Some(selector) = selector {
            match &selector.name {
                Some(name) => {
                    self.metrics.insert(name.clone());
                }
                None => return Err(format!("a selector without a metric name: {selector}")),
            }
            for matcher in &selector.matchers.matchers {
                if matcher.name != "__name__" {
                    self.labels.insert(matcher.name.clone());
                }
            }
        }
        if let Expr::Aggregate(aggregate) = expr
            && let Some(modifier) = &aggregate.modifier
        {
            self.labels.extend(modifier.labels().labels.iter().cloned());
        }
        if let Expr::Binary(binary) = expr
            && let Some(modifier) = &binary.modifier
        {
            if let Some(matching) = &modifier.matching {
                self.labels.extend(matching.labels().labels.iter().cloned());
            }
            if let Some(labels) = modifier.card.labels() {
                self.labels.extend(labels.labels.iter().cloned());
            }
        }
        Ok(true)
    }
}

/// Grafana's variables, replaced by values PromQL accepts.
fn substitute_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${worker}", "x")
        .replace("$worker", "x")
}

/// What is wrong with `expr` against the catalogue (empty when nothing).
fn check_expr(rows: &[Row], expr: &str) -> Vec<String> {
    let expr = substitute_grafana_variables(expr);
    let parsed = match parser::parse(&expr) {
        Ok(parsed) => parsed,
        Err(error) => return vec![format!("{expr}: does not parse: {error}")],
    };
    let mut used = Used::default();
    if let Err(error) = walk_expr(&mut used, &parsed) {
        return vec![format!("{expr}: {error}")];
    }
    let mut problems = Vec::new();
    let mut available: BTreeSet<String> = TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect();
    for metric in &used.metrics {
        if SYNTHETIC.contains(&metric.as_str()) {
            continue;
        }
        let histogram_series = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| metric.strip_suffix(suffix).map(|base| (base, *suffix)));
        let row = rows.iter().find(|row| row.name == *metric).or_else(|| {
            histogram_series.and_then(|(base, _)| {
                rows.iter()
                    .find(|row| row.name == base && row.kind == "histogram")
            })
        });
        match row {
            None => problems.push(format!(
                "{expr}: {metric} is not exported by any worker (deploy/metrics.md)"
            )),
            Some(row) => {
                available.extend(row.labels.iter().cloned());
                if row.name != *metric && histogram_series.is_some_and(|(_, s)| s == "_bucket") {
                    available.insert("le".to_owned());
                }
            }
        }
    }
    for label in used.labels.difference(&available) {
        problems.push(format!(
            "{expr}: label {label} is on none of its metrics ({:?})",
            used.metrics
        ));
    }
    problems
}

/// Every PromQL expression of a dashboard: panel targets (rows included) and query variables.
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(object) => {
                if let Some(targets) = object.get("targets").and_then(|t| t.as_array()) {
                    for target in targets {
                        if let Some(expr) = target.get("expr").and_then(|e| e.as_str()) {
                            found.push(expr.to_owned());
                        }
                    }
                }
                object.values().for_each(|child| walk(child, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|child| walk(child, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&dashboard["panels"], &mut found);
    found
}

/// `label_values(metric, label)` variables as (metric, label).
fn label_values_variables(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|variable| {
            let query = variable["query"]["query"]
                .as_str()
                .or_else(|| variable["query"].as_str())?;
            let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
            let (metric, label) = inner.split_once(',')?;
            Some((metric.trim().to_owned(), label.trim().to_owned()))
        })
        .collect()
}

fn dashboards() -> Vec<(PathBuf, serde_json::Value)> {
    let dir = repo().join("deploy/grafana/dashboards");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("dashboard file");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path, json)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The alerting rules of every rule file: (file, rule).
fn alert_rules() -> Vec<(PathBuf, serde_yaml_ng::Value)> {
    let dir = repo().join("deploy/prometheus/rules");
    let mut rules = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("rule file");
        let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        for group in document["groups"].as_sequence().expect("groups") {
            for rule in group["rules"].as_sequence().expect("rules") {
                rules.push((path.clone(), rule.clone()));
            }
        }
    }
    rules
}

#[test]
fn dashboards_query_only_what_the_workers_export() {
    let rows = catalogue();
    let boards = dashboards();
    let titles: BTreeSet<&str> = boards
        .iter()
        .filter_map(|(_, board)| board["title"].as_str())
        .collect();
    assert!(
        titles.contains("Retail saga: operations") && titles.contains("Retail saga: business"),
        "the two boards are provisioned: {titles:?}"
    );
    let mut problems = Vec::new();
    let mut expressions = 0;
    for (path, board) in &boards {
        let name = path.file_name().expect("file name").to_string_lossy();
        for expr in dashboard_exprs(board) {
            expressions += 1;
            problems.extend(
                check_expr(&rows, &expr)
                    .into_iter()
                    .map(|problem| format!("{name}: {problem}")),
            );
        }
        for (metric, label) in label_values_variables(board) {
            match rows.iter().find(|row| row.name == metric) {
                Some(row) if row.labels.contains(&label) => {}
                _ => problems.push(format!("{name}: variable label_values({metric}, {label})")),
            }
        }
    }
    assert!(expressions >= 30, "only {expressions} expressions found");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_panel_and_query_uses_the_provisioned_prometheus_datasource() {
    fn walk(value: &serde_json::Value, path: &str, problems: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(object) => {
                if let Some(datasource) = object.get("datasource") {
                    let uid = datasource["uid"].as_str();
                    let kind = datasource["type"].as_str();
                    if (uid, kind) != (Some("prometheus"), Some("prometheus")) {
                        problems.push(format!("{path}: datasource {datasource}"));
                    }
                }
                for (key, child) in object {
                    walk(child, &format!("{path}.{key}"), problems);
                }
            }
            serde_json::Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{index}]"), problems);
                }
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for (path, board) in dashboards() {
        walk(&board, &path.display().to_string(), &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn alert_rules_query_only_what_the_workers_export_and_have_a_runbook() {
    let rows = catalogue();
    let runbook = std::fs::read_to_string(repo().join("deploy/runbook.md")).expect("runbook");
    let sections: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(|heading| heading.trim().to_lowercase())
        .collect();
    let rules = alert_rules();
    let mut problems = Vec::new();
    let mut alerts = BTreeSet::new();
    for (path, rule) in &rules {
        let name = path.file_name().expect("file name").to_string_lossy();
        let Some(alert) = rule["alert"].as_str() else {
            continue;
        };
        alerts.insert(alert.to_owned());
        let expr = rule["expr"].as_str().expect("expr");
        problems.extend(
            check_expr(&rows, expr)
                .into_iter()
                .map(|problem| format!("{name} {alert}: {problem}")),
        );
        if !matches!(
            rule["labels"]["severity"].as_str(),
            Some("warning" | "critical")
        ) {
            problems.push(format!("{alert}: severity must be warning or critical"));
        }
        for annotation in ["summary", "description"] {
            if rule["annotations"][annotation]
                .as_str()
                .is_none_or(str::is_empty)
            {
                problems.push(format!("{alert}: no {annotation}"));
            }
        }
        let expected = format!("deploy/runbook.md#{}", alert.to_lowercase());
        if rule["annotations"]["runbook_url"].as_str() != Some(expected.as_str()) {
            problems.push(format!("{alert}: runbook_url must be {expected}"));
        }
        if !sections.contains(&alert.to_lowercase()) {
            problems.push(format!(
                "{alert}: deploy/runbook.md has no section ## {alert}"
            ));
        }
    }
    // What the issue asks alerts for.
    for required in [
        "RetailConsumerLagGrowing",
        "RetailWorkerDown",
        "RetailWorkerNotReady",
        "RetailDeadLetters",
        "RetailEndToEndLatencyHigh",
        "RetailOrdersStuck",
        "RetailNoShipments",
        "RetailNotificationFailures",
    ] {
        if !alerts.contains(required) {
            problems.push(format!("no alert {required}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

fn promtool(args: &[&str]) -> std::process::Output {
    std::process::Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool is installed (tests/run installs Debian's prometheus package)")
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let rules: Vec<String> = alert_rules()
        .into_iter()
        .map(|(path, _)| path.display().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut check = vec!["check", "rules"];
    check.extend(rules.iter().map(String::as_str));
    let output = promtool(&check);
    assert!(
        output.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tests = Path::new("deploy/prometheus/tests/retail-saga.test.yml");
    let output = promtool(&["test", "rules", &tests.display().to_string()]);
    assert!(
        output.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_expression_check_catches_unknown_metrics_and_labels() {
    let rows = catalogue();
    assert!(
        check_expr(
            &rows,
            "sum by (worker) (rate(worker_records_consumed_total[5m]))"
        )
        .is_empty()
    );
    assert!(check_expr(&rows, "histogram_quantile(0.99, sum by (le) (rate(worker_handler_duration_seconds_bucket[5m])))").is_empty());
    assert_eq!(
        check_expr(&rows, "rate(worker_recods_consumed_total[5m])").len(),
        1
    );
    assert_eq!(
        check_expr(&rows, "sum by (order_id) (worker_consumer_lag_records)").len(),
        1
    );
    assert_eq!(
        check_expr(&rows, "sum by (le) (worker_consumer_lag_records)").len(),
        1,
        "le only on histogram buckets"
    );
    assert_eq!(check_expr(&rows, "sum(rate(").len(), 1, "does not parse");
}
