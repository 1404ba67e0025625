//! Every environment variable of every deployed binary, set to a value that fits no setting:
//! the binary must stop at once, non-zero, with a message that names the variable, and never
//! panic. The variables are read from each binary's `--help`, so a new flag is covered the day
//! it is added; the few that take any text (a name, a path) are listed below with why.
//!
//! Nothing connects: the cluster and registry addresses point at a closed port, so a value the
//! binary wrongly accepts shows up as a process still running after the deadline.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use retail_integration_tests::process::binary;

/// A value no number, duration, address, URL, enum, file or name setting accepts.
const BOGUS: &str = "bogus value!";

/// Variables whose settings take any text, so [`BOGUS`] is a valid value.
const FREE_FORM: &[(&str, &str)] = &[
    (
        "FULFILMENT_WAREHOUSE_ID",
        "an opaque id carried on the events",
    ),
    (
        "NOTIFICATION_DIR",
        "a folder the file channel creates, relative to the working directory",
    ),
    (
        "SIMULATOR_SUMMARY_FILE",
        "a file written at the end, relative to the working directory",
    ),
];

/// How long a rejected value may take to stop the binary.
const DEADLINE: Duration = Duration::from_secs(20);

/// The variables a binary's `--help` lists (`[env: NAME=...]`).
fn variables(binary_name: &str, args: &[&str]) -> Vec<String> {
    let output = Command::new(binary(binary_name))
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .expect("--help runs");
    let help = String::from_utf8_lossy(&output.stdout);
    let mut names: Vec<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Runs the binary with `base` plus `name=BOGUS` in an empty folder; its status code (`None`
/// if it was still running at the deadline, then killed) and its output.
fn run(
    binary_name: &str,
    args: &[&str],
    base: &[(&str, &str)],
    name: &str,
    dir: &Path,
) -> (Option<i32>, String) {
    let log = dir.join(format!("{binary_name}-{name}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(binary(binary_name))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(base.iter().copied())
        .env(name, BOGUS)
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + DEADLINE;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(&log).unwrap_or_default())
}

/// Checks every variable of one binary (or subcommand); returns the problems found.
fn sweep(binary_name: &str, args: &[&str], base: &[(&str, &str)], dir: &Path) -> Vec<String> {
    let names = variables(binary_name, args);
    assert!(
        names.len() >= 5,
        "{binary_name} {args:?}: too few variables in --help: {names:?}"
    );
    let mut problems = Vec::new();
    for name in &names {
        if FREE_FORM.iter().any(|(free, _)| free == name) {
            continue;
        }
        let (code, output) = run(binary_name, args, base, name, dir);
        let last = output.trim_end().lines().last().unwrap_or_default();
        match code {
            None => problems.push(format!(
                "{binary_name} {args:?}: {name}={BOGUS:?} accepted (still running after {DEADLINE:?}): {last}"
            )),
            Some(0) => problems.push(format!(
                "{binary_name} {args:?}: {name}={BOGUS:?} exited 0"
            )),
            Some(_) if output.contains("panicked") => problems.push(format!(
                "{binary_name} {args:?}: {name}={BOGUS:?} panicked: {output}"
            )),
            Some(_) if !output.contains(name.as_str()) => problems.push(format!(
                "{binary_name} {args:?}: {name}={BOGUS:?} rejected without naming the variable: {output}"
            )),
            Some(_) => {}
        }
    }
    println!("{binary_name} {args:?}: {} variables checked", names.len());
    problems
}

#[test]
fn every_variable_of_every_binary_rejects_a_bad_value_naming_it() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-sweep");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("folder");
    let closed = [
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"),
        ("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1"),
    ];
    let webhook = [
        closed[0],
        closed[1],
        ("NOTIFICATION_CHANNEL", "webhook"),
        (
            "NOTIFICATION_WEBHOOK_URL",
            "https://hooks.example.com/orders",
        ),
        (
            "NOTIFICATION_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
    ];
    let mut problems = Vec::new();
    for worker in ["inventory", "fulfilment", "shipping", "fraud"] {
        problems.extend(sweep(worker, &[], &closed, &dir));
    }
    // The webhook's settings are read with the webhook channel.
    problems.extend(sweep("notification", &[], &webhook, &dir));
    problems.extend(sweep("simulator", &[], &closed, &dir));
    for subcommand in [
        &["topics", "create"][..],
        &["schemas", "register"],
        &["schemas", "check"],
        &["tail", "storefront.orders.v1", "--from-beginning"],
        &["timeline", "order-1"],
        &["dlq", "list"],
        &["dlq", "replay", "--topic", "inventory.orders.dlq"],
    ] {
        problems.extend(sweep("retailctl", subcommand, &closed, &dir));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
