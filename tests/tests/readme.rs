//! The README's configuration reference against the binaries: every variable each worker
//! accepts (from its own `--help`) has a row with its flag and default, and every row names a
//! variable some worker accepts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use retail_integration_tests::process::binary;

const WORKERS: [&str; 5] = [
    "inventory",
    "fraud",
    "fulfilment",
    "shipping",
    "notification",
];

/// One option of a `--help` text: flag, environment variable and default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting {
    flag: String,
    default: Option<String>,
}

/// The options of `<worker> --help` that read an environment variable, by variable.
fn settings(worker: &str) -> BTreeMap<String, Setting> {
    let output = std::process::Command::new(binary(worker))
        .arg("--help")
        .output()
        .unwrap_or_else(|error| panic!("{worker} --help: {error} (tests/run builds the binaries)"));
    assert!(output.status.success(), "{worker} --help failed");
    let help = String::from_utf8(output.stdout).expect("utf-8 help");
    let mut found = BTreeMap::new();
    let mut flag: Option<String> = None;
    let mut env: Option<String> = None;
    let mut default: Option<String> = None;
    let mut flush =
        |flag: &mut Option<String>, env: &mut Option<String>, default: &mut Option<String>| {
            if let (Some(flag), Some(env)) = (flag.take(), env.take()) {
                found.insert(
                    env,
                    Setting {
                        flag,
                        default: default.take(),
                    },
                );
            }
            *default = None;
        };
    for line in help.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.starts_with("-h, --") {
            flush(&mut flag, &mut env, &mut default);
            let name = trimmed
                .trim_start_matches("-h, ")
                .split_whitespace()
                .next()
                .unwrap_or("");
            flag = Some(name.to_owned());
        }
        if let Some(rest) = trimmed.strip_prefix("[env: ") {
            env = Some(rest.split(['=', ']']).next().unwrap_or("").to_owned());
        }
        for (index, _) in trimmed.match_indices("[default: ") {
            let rest = &trimmed[index + "[default: ".len()..];
            default = rest.split_once(']').map(|(value, _)| value.to_owned());
        }
    }
    flush(&mut flag, &mut env, &mut default);
    found
}

/// The README's configuration rows: variable -> (flag cell, default cell).
fn readme_rows() -> BTreeMap<String, (String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let mut rows = BTreeMap::new();
    for line in readme.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = rest.split(" | ").collect();
        let variable = cells[0].trim_end_matches('`');
        if cells.len() < 4 || !variable.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            continue;
        }
        let unquote = |cell: &str| cell.trim().trim_matches('`').to_owned();
        let previous = rows.insert(variable.to_owned(), (unquote(cells[1]), unquote(cells[2])));
        assert!(previous.is_none(), "README lists {variable} twice");
    }
    rows
}

#[test]
fn the_configuration_reference_lists_every_variable_with_its_flag_and_default() {
    let rows = readme_rows();
    let mut problems = Vec::new();
    let mut accepted = BTreeMap::new();
    for worker in WORKERS {
        for (variable, setting) in settings(worker) {
            accepted.insert(variable.clone(), worker);
            match rows.get(&variable) {
                None => problems.push(format!("{worker}: {variable} is not in the README")),
                Some((flag, default)) => {
                    if *flag != setting.flag {
                        problems.push(format!(
                            "{variable}: README says {flag}, {worker} has {}",
                            setting.flag
                        ));
                    }
                    let expected = setting.default.clone().unwrap_or_else(|| "-".to_owned());
                    if *default != expected {
                        problems.push(format!(
                            "{variable}: README default {default}, {worker} --help says {expected}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        accepted.len() > 50,
        "only {} variables parsed from --help",
        accepted.len()
    );
    for variable in rows.keys() {
        if !accepted.contains_key(variable) {
            problems.push(format!(
                "the README lists {variable}, which no worker accepts"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "README configuration reference: {problems:#?}"
    );
}
