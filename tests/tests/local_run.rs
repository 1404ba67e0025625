//! The local run command (`retail-local`) end to end, non-interactively: a short `--duration`
//! run that starts its own broker, registry, five workers and simulator, drains, stops
//! everything and writes `--summary-json`. The summary must show every order ended once
//! (placed = shipped + cancelled, none left), stock balanced for every SKU, no dead letters,
//! every process stopped cleanly, and none of their process ids still alive.
//!
//! Once on each broker the command offers: librdkafka's mock cluster (its default) and the
//! local broker (tansu), one after the other (each run is seven or eight processes on a shared
//! machine). The launcher takes the binaries `tests/run` built (`--bin-dir`), so it builds
//! nothing here.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use retail_integration_tests::process::binary;
use retail_integration_tests::unique_name;
use retail_local::Summary;

/// One run at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alive(pid: u32) -> bool {
    retail_local::children::alive(pid)
}

#[test]
fn a_short_run_on_the_mock_cluster_ends_every_order_with_balanced_stock_and_leaves_no_process() {
    short_run("mock");
}

#[test]
fn a_short_run_on_the_local_broker_ends_every_order_with_balanced_stock_and_leaves_no_process() {
    short_run("tansu");
}

fn short_run(broker: &str) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let launcher = binary("retail-local");
    let bin_dir = launcher.parent().expect("target/<profile>").to_owned();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("local-run")
        .join(unique_name("run"));
    std::fs::create_dir_all(&dir).expect("test folder");
    let summary_path = dir.join("summary.json");

    let mut command = Command::new(&launcher);
    command
        .args(["--broker", broker])
        .args(["--duration", "20s", "--rate", "10", "--seed", "7"])
        // Missing payments end in TIMEOUT after this, well inside the drain timeout.
        .args(["--answer-deadline", "10s", "--pick-pack-time", "200ms"])
        .args(["--drain-timeout", "90s"])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .arg("--summary-json")
        .arg(&summary_path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout.log")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("stderr file"));
    // The launcher's own variables and the suite's cluster must not redirect it.
    for (key, _) in std::env::vars() {
        if key.starts_with("LOCAL_RUN_") {
            command.env_remove(key);
        }
    }
    let mut child = command.spawn().expect("retail-local starts");
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "retail-local still running after 240 s; output in {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
    let errors = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(
        status.success(),
        "retail-local exited with {status}\nstdout:\n{output}\nstderr:\n{errors}"
    );
    let summary: Summary = serde_json::from_str(
        &std::fs::read_to_string(&summary_path).expect("the summary file was written"),
    )
    .expect("the summary parses");
    println!(
        "{broker}: {} orders ({} shipped, {:?}), p50 {:?} ms, p99 {:?} ms; started in {:.1} s",
        summary.orders_placed,
        summary.orders_shipped,
        summary.cancelled_by_reason,
        summary.latency_p50_ms,
        summary.latency_p99_ms,
        summary.startup_secs
    );

    // 20 s at 10 orders/s.
    assert_eq!(summary.simulator_orders_sent, Some(200), "{output}");
    assert_eq!(summary.orders_placed, 200, "{output}");
    assert_eq!(
        summary.orders_placed,
        summary.orders_shipped + summary.orders_cancelled,
        "placed = shipped + cancelled: {summary:?}"
    );
    assert_eq!(
        summary.orders_cancelled,
        summary.cancelled_by_reason.values().sum::<u64>()
    );
    assert_eq!(summary.orders_not_terminal, 0);
    assert_eq!(summary.orders_multiple_terminal, 0);
    assert!(summary.all_terminal);
    assert!(summary.orders_shipped > 0, "{summary:?}");
    // The simulator's default mix cancels some orders for each of these reasons in 200.
    for reason in ["PAYMENT_FAILED", "OUT_OF_STOCK"] {
        assert!(
            summary
                .cancelled_by_reason
                .get(reason)
                .copied()
                .unwrap_or(0)
                > 0,
            "no {reason} cancellations: {:?}",
            summary.cancelled_by_reason
        );
    }
    assert!(summary.latency_p50_ms.is_some() && summary.latency_p99_ms >= summary.latency_p50_ms);

    assert!(!summary.stock.is_empty(), "no SKU was stocked");
    assert!(
        summary.stock_balanced,
        "unbalanced: {:?}",
        summary
            .stock
            .iter()
            .filter(|sku| !sku.balanced)
            .collect::<Vec<_>>()
    );
    let shipped_units: i64 = summary.stock.iter().map(|sku| sku.shipped).sum();
    assert!(shipped_units >= summary.orders_shipped as i64);

    assert_eq!(summary.dead_letters.len(), 5, "{:?}", summary.dead_letters);
    assert!(
        summary.dead_letters.values().all(|count| *count == 0),
        "dead letters: {:?}",
        summary.dead_letters
    );

    // simulator + five workers + registry (+ the tansu broker).
    let expected_processes = if broker == "mock" { 7 } else { 8 };
    assert_eq!(
        summary.processes.len(),
        expected_processes,
        "{:?}",
        summary.processes
    );
    for process in &summary.processes {
        assert!(
            process.clean,
            "{} did not stop cleanly: {}",
            process.name, process.exit
        );
        assert!(
            !alive(process.pid),
            "{} (pid {}) is still running",
            process.name,
            process.pid
        );
    }
}
