//! `retail-bench instructions`: instructions per event of the per-record paths, counted by
//! callgrind on the offline replay harness (`src/bin/replay.rs`): a figure free of the noise of
//! timings (other processes, CPU frequency, the broker), for comparing builds.
//!
//! Each path is replayed twice under `valgrind --tool=callgrind`, with a small and a large
//! number of records. Callgrind counts only the instructions of the measured records (it toggles
//! collection on the harness's [`MEASURED_FUNCTION`] and off again inside its
//! [`CHECK_FUNCTION`]), and the figure is the difference of the two totals divided by the
//! difference of the record counts: what one more record costs, without start-up and the
//! first records' one-off work (caches filling, buffers growing). The harness checks its own
//! results and exits non-zero if a path misbehaves, which fails the run here.
//!
//! The callgrind output files are kept (the table says where), for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};

#[path = "replay_paths.rs"]
mod replay_paths;

use replay_paths::{CHECK_FUNCTION, MEASURED_FUNCTION, ReplayPath};

/// Default record count of the small run.
const SMALL_EVENTS: u64 = 2_000;
/// Default record count of the large run.
const LARGE_EVENTS: u64 = 12_000;

/// Options of the `instructions` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct InstructionsArgs {
    /// Paths to measure (repeatable); every path if none is given.
    #[arg(
        long = "path",
        value_enum,
        env = "BENCH_INSTRUCTIONS_PATHS",
        value_delimiter = ','
    )]
    pub(crate) paths: Vec<ReplayPath>,
    /// Records of the small run.
    #[arg(long, env = "BENCH_INSTRUCTIONS_SMALL_EVENTS", default_value_t = SMALL_EVENTS)]
    pub(crate) small_events: u64,
    /// Records of the large run; the figure is what the records between the two cost.
    #[arg(long, env = "BENCH_INSTRUCTIONS_LARGE_EVENTS", default_value_t = LARGE_EVENTS)]
    pub(crate) large_events: u64,
    /// Directory for callgrind's output files (created if missing); a fresh directory under
    /// the system's temporary directory if not given.
    #[arg(long, env = "BENCH_INSTRUCTIONS_OUT_DIR")]
    pub(crate) out_dir: Option<PathBuf>,
    /// Runs of each record count; the median is used. Callgrind is deterministic except for
    /// hash-map seeds and where the allocator finds memory: between runs the no-op hop's
    /// figure moved by up to 4%, the others' by under 0.3%.
    #[arg(long, env = "BENCH_INSTRUCTIONS_REPEAT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub(crate) repeat: u32,
    /// The replay harness; by default `replay` next to this executable (both are built by
    /// `cargo build --release -p retail-bench --bins`).
    #[arg(long, env = "BENCH_REPLAY_BIN")]
    pub(crate) replay_bin: Option<PathBuf>,
}

impl Default for InstructionsArgs {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            small_events: SMALL_EVENTS,
            large_events: LARGE_EVENTS,
            out_dir: None,
            repeat: 1,
            replay_bin: None,
        }
    }
}

/// One path's figure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathInstructions {
    /// The path.
    pub(crate) path: ReplayPath,
    /// Instructions collected in the small run, and its record count.
    pub(crate) small: (u64, u64),
    /// Instructions collected in the large run, and its record count.
    pub(crate) large: (u64, u64),
    /// Mean size of an input record (Confluent-framed bytes) in the large run.
    pub(crate) input_bytes_per_event: f64,
    /// The large run's callgrind output file.
    pub(crate) callgrind_file: PathBuf,
}

impl PathInstructions {
    /// Instructions one more record costs.
    pub(crate) fn per_event(&self) -> f64 {
        let instructions = self.large.0.saturating_sub(self.small.0) as f64;
        let events = self.large.1.saturating_sub(self.small.1) as f64;
        instructions / events
    }

    /// Instructions per input byte.
    pub(crate) fn per_input_byte(&self) -> f64 {
        self.per_event() / self.input_bytes_per_event
    }
}

/// The figures of a run, with where callgrind's files are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instructions {
    /// One per path, in the order measured.
    pub(crate) paths: Vec<PathInstructions>,
    /// The replay binary measured.
    pub(crate) replay_bin: PathBuf,
}

/// Measures every requested path (one after the other: callgrind runs one thread at a time
/// anyway, and the machine's other cores stay free).
pub(crate) async fn run(args: InstructionsArgs) -> anyhow::Result<Instructions> {
    tokio::task::spawn_blocking(move || measure(&args))
        .await
        .context("the measuring thread")?
}

fn measure(args: &InstructionsArgs) -> anyhow::Result<Instructions> {
    ensure!(
        args.small_events >= 1 && args.large_events > args.small_events,
        "--large-events ({}) must exceed --small-events ({}), which must be at least 1",
        args.large_events,
        args.small_events
    );
    check_valgrind()?;
    let replay_bin = match &args.replay_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name(format!("replay{}", std::env::consts::EXE_SUFFIX)),
    };
    ensure!(
        replay_bin.is_file(),
        "the replay harness {} does not exist: build it with `cargo build --release -p \
         retail-bench --bins`",
        replay_bin.display()
    );
    let out_dir = match &args.out_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("retail-bench-callgrind-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let paths = if args.paths.is_empty() {
        ReplayPath::ALL.to_vec()
    } else {
        args.paths.clone()
    };
    let mut figures = Vec::with_capacity(paths.len());
    for path in paths {
        let small = median_run(&replay_bin, &out_dir, path, args.small_events, args.repeat)?;
        let large = median_run(&replay_bin, &out_dir, path, args.large_events, args.repeat)?;
        ensure!(
            large.instructions > small.instructions,
            "{}: {} records took {} instructions, {} records {}: the larger run must take more",
            path.name(),
            args.large_events,
            large.instructions,
            args.small_events,
            small.instructions
        );
        let figure = PathInstructions {
            path,
            small: (small.instructions, args.small_events),
            large: (large.instructions, args.large_events),
            input_bytes_per_event: large.input_bytes as f64 / args.large_events as f64,
            callgrind_file: large.file,
        };
        eprintln!(
            "{}: {:.0} instructions/event",
            path.name(),
            figure.per_event()
        );
        figures.push(figure);
    }
    Ok(Instructions {
        paths: figures,
        replay_bin,
    })
}

/// Fails with how to install valgrind if it cannot be run.
fn check_valgrind() -> anyhow::Result<()> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => bail!(
            "`valgrind --version` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
            "valgrind is not installed (not on PATH); install it, e.g. `sudo apt-get install \
             valgrind` on Debian or Ubuntu"
        ),
        Err(error) => Err(error).context("running valgrind"),
    }
}

/// What one callgrind run of the harness counted.
#[derive(Debug)]
struct Run {
    /// Instructions collected (only inside the measured records).
    instructions: u64,
    /// Input bytes of the measured records, as the harness reported them.
    input_bytes: u64,
    /// The callgrind output file.
    file: PathBuf,
}

/// The run with the median instruction count of `repeat` runs.
fn median_run(
    replay_bin: &Path,
    out_dir: &Path,
    path: ReplayPath,
    events: u64,
    repeat: u32,
) -> anyhow::Result<Run> {
    let mut runs = (1..=repeat)
        .map(|attempt| callgrind(replay_bin, out_dir, path, events, attempt))
        .collect::<anyhow::Result<Vec<Run>>>()?;
    runs.sort_by_key(|run| run.instructions);
    if let (Some(first), Some(last)) = (runs.first(), runs.last())
        && repeat > 1
    {
        eprintln!(
            "{}: {events} records: {} to {} instructions in {repeat} runs",
            path.name(),
            first.instructions,
            last.instructions
        );
    }
    let middle = runs.len() / 2;
    runs.into_iter()
        .nth(middle)
        .context("no callgrind run (--repeat is at least 1)")
}

fn callgrind(
    replay_bin: &Path,
    out_dir: &Path,
    path: ReplayPath,
    events: u64,
    attempt: u32,
) -> anyhow::Result<Run> {
    let file = out_dir.join(format!("callgrind.{}.{events}.{attempt}.out", path.name()));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg("--collect-atstart=no")
        .arg(format!("--toggle-collect={MEASURED_FUNCTION}"))
        .arg(format!("--toggle-collect={CHECK_FUNCTION}"))
        .arg(replay_bin)
        .args(["--path", path.name(), "--events", &events.to_string()])
        .output()
        .context("running valgrind")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the replay of {} ({events} records) under callgrind failed ({}):\n{}{}",
            path.name(),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary = stdout
        .lines()
        .rev()
        .find_map(|line| parse_summary(line, "input_bytes"))
        .with_context(|| format!("the replay printed no summary: {stdout}"))?;
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let instructions = callgrind_total(&text, "Ir")
        .with_context(|| format!("{}: no instruction total", file.display()))?;
    ensure!(
        instructions > 0,
        "callgrind collected no instructions in {}: the harness's function names ({} and {}) \
         were not found in the binary",
        file.display(),
        MEASURED_FUNCTION,
        CHECK_FUNCTION
    );
    Ok(Run {
        instructions,
        input_bytes: summary,
        file,
    })
}

/// The value of `key` in the harness's summary line (`key=value` pairs).
fn parse_summary(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == key)
        .and_then(|(_, value)| value.parse().ok())
}

/// The total of `event` (e.g. `Ir`) in a callgrind output file: the `totals:` line, or the
/// `summary:` line of older files, read in the column the `events:` line gives the event.
fn callgrind_total(text: &str, event: &str) -> Option<u64> {
    let mut events: Option<Vec<&str>> = None;
    let (mut totals, mut summary) = (None, None);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("events:") {
            events = Some(rest.split_whitespace().collect());
        } else if let Some(rest) = line.strip_prefix("totals:") {
            totals = Some(rest);
        } else if let Some(rest) = line.strip_prefix("summary:") {
            summary = Some(rest);
        }
    }
    let column = events?.iter().position(|name| *name == event)?;
    totals
        .or(summary)?
        .split_whitespace()
        .nth(column)?
        .parse()
        .ok()
}

/// The figures as a Markdown table.
pub(crate) fn table(instructions: &Instructions) -> String {
    let mut out = String::new();
    out.push_str("| path | what one record goes through | instructions/event | input bytes/event | instructions/input byte |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: |\n");
    for figure in &instructions.paths {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.1} |\n",
            figure.path.name(),
            figure.path.description(),
            figure.per_event(),
            figure.input_bytes_per_event,
            figure.per_input_byte()
        ));
    }
    if let Some(first) = instructions.paths.first() {
        out.push_str(&format!(
            "\nCallgrind instruction counts of {} (records {} and {} per path; the figure is the \
             difference per record). Output files, for `callgrind_annotate`: {}\n",
            instructions.replay_bin.display(),
            first.small.1,
            first.large.1,
            first
                .callgrind_file
                .parent()
                .map_or_else(String::new, |dir| dir.display().to_string())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head and tail of the file callgrind 3.19 wrote for `replay --path decode-order --events
    /// 200` (its `summary:` and `totals:` lines both say 5,595,644).
    const CALLGRIND_FILE: &str = include_str!("testdata/callgrind-head-tail.out");

    #[test]
    fn the_instruction_total_is_read_from_the_totals_line() {
        assert_eq!(callgrind_total(CALLGRIND_FILE, "Ir"), Some(5_595_644));
        assert_eq!(callgrind_total(CALLGRIND_FILE, "Dr"), None);
    }

    #[test]
    fn the_total_is_taken_from_the_events_column_and_summary_lines_are_understood() {
        let text = "version: 1\nevents: Ir Dr Dw\nfn=(1) main\n5 10 2 1\nsummary: 300 40 7\n";
        assert_eq!(callgrind_total(text, "Ir"), Some(300));
        assert_eq!(callgrind_total(text, "Dw"), Some(7));
        assert_eq!(callgrind_total(text, "I1mr"), None);
        let both = "events: Ir\nsummary: 5\ntotals: 6\n";
        assert_eq!(callgrind_total(both, "Ir"), Some(6));
        assert_eq!(callgrind_total("totals: 6\n", "Ir"), None, "no events line");
        assert_eq!(callgrind_total("events: Ir\ntotals: x\n", "Ir"), None);
    }

    #[test]
    fn the_summary_line_of_the_harness_is_parsed() {
        let line = "path=order-stage events=2000 input_bytes=812345 outputs=5000";
        assert_eq!(parse_summary(line, "input_bytes"), Some(812_345));
        assert_eq!(parse_summary(line, "events"), Some(2_000));
        assert_eq!(parse_summary(line, "changelog_bytes"), None);
        assert_eq!(parse_summary("no summary here", "events"), None);
    }

    #[test]
    fn the_figure_is_the_difference_per_record() {
        let figure = PathInstructions {
            path: ReplayPath::OrderStage,
            small: (2_500_000, 2_000),
            large: (12_500_000, 12_000),
            input_bytes_per_event: 500.0,
            callgrind_file: PathBuf::from("/tmp/x/callgrind.order-stage.12000.out"),
        };
        assert_eq!(figure.per_event(), 1_000.0);
        assert_eq!(figure.per_input_byte(), 2.0);
        let table = table(&Instructions {
            paths: vec![figure],
            replay_bin: PathBuf::from("/t/release/replay"),
        });
        assert!(table.contains("| order-stage | inventory order stage: OrderPlaced -> HOLD per SKU | 1000 | 500 | 2.0 |"), "{table}");
        assert!(table.contains("/tmp/x"), "{table}");
    }
}
