//! The live view: the saga's figures redrawn in place once a second on a terminal, or one plain
//! line every few seconds when the output is not a terminal (or with `--no-tui`/`--duration`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use console::{Term, style};

use crate::observe::Figures;
use crate::scrape::WorkerMetrics;

/// How far back throughput is measured.
const WINDOW: Duration = Duration::from_secs(10);

/// Redraws the figures.
#[derive(Debug)]
pub struct View {
    /// `Some` when redrawing in place on a terminal.
    term: Option<Term>,
    /// Lines drawn last time, cleared before the next draw.
    drawn: usize,
    /// (when, placed, terminal) samples for the throughput over [`WINDOW`].
    samples: VecDeque<(Instant, u64, u64)>,
    /// When the last plain line was printed.
    last_line: Option<Instant>,
    /// When the view started.
    started: Instant,
}

impl View {
    /// A live view if `live` and stdout is a terminal, else plain lines.
    pub fn new(live: bool) -> Self {
        let term = Term::stdout();
        Self {
            term: (live && term.is_term()).then_some(term),
            drawn: 0,
            samples: VecDeque::new(),
            last_line: None,
            started: Instant::now(),
        }
    }

    /// Orders placed and ended per second over the last seconds.
    fn rates(&mut self, figures: &Figures) -> (f64, f64) {
        let now = Instant::now();
        self.samples
            .push_back((now, figures.placed, figures.terminal()));
        while self
            .samples
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > WINDOW)
        {
            self.samples.pop_front();
        }
        match (self.samples.front(), self.samples.back()) {
            (Some((first_at, first_placed, first_done)), Some((last_at, placed, done)))
                if last_at > first_at =>
            {
                let seconds = last_at.duration_since(*first_at).as_secs_f64();
                (
                    (placed - first_placed) as f64 / seconds,
                    (done - first_done) as f64 / seconds,
                )
            }
            _ => (0.0, 0.0),
        }
    }

    /// Shows the figures: redrawn in place, or a plain line every 5 s.
    pub fn show(
        &mut self,
        status: &str,
        figures: &Figures,
        workers: &BTreeMap<String, (Option<String>, WorkerMetrics, bool)>,
    ) {
        let (placed_rate, done_rate) = self.rates(figures);
        let Some(term) = &self.term else {
            if self
                .last_line
                .is_some_and(|at| at.elapsed() < Duration::from_secs(5))
            {
                return;
            }
            self.last_line = Some(Instant::now());
            let lag: u64 = workers.values().map(|(_, metrics, _)| metrics.lag).sum();
            let dead: u64 = workers
                .values()
                .map(|(_, metrics, _)| metrics.dead_lettered)
                .sum();
            println!(
                "[{:>4}s] {status}: placed {} shipped {} cancelled {} in flight {} | {:.1} ended/s | p50 {} p99 {} | lag {lag} dead letters {dead}",
                self.started.elapsed().as_secs(),
                figures.placed,
                figures.shipped,
                figures.cancelled_total(),
                figures.in_flight,
                done_rate,
                ms(figures.latency_p50_ms),
                ms(figures.latency_p99_ms),
            );
            return;
        };
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{}  {}  [{}s]",
            style("retail saga, local run").bold(),
            status,
            self.started.elapsed().as_secs()
        );
        let _ = writeln!(
            text,
            "orders   placed {:>7}   in flight {:>6}   shipped {:>7}   cancelled {:>6}",
            figures.placed,
            figures.in_flight,
            style(figures.shipped).green(),
            style(figures.cancelled_total()).yellow()
        );
        let reasons: Vec<String> = figures
            .cancelled
            .iter()
            .map(|(reason, count)| format!("{reason} {count}"))
            .collect();
        let _ = writeln!(
            text,
            "cancelled by reason: {}",
            if reasons.is_empty() {
                "-".to_owned()
            } else {
                reasons.join("  ")
            }
        );
        let _ = writeln!(
            text,
            "throughput  placed {placed_rate:>6.1}/s   ended {done_rate:>6.1}/s   saga latency p50 {}  p99 {}",
            ms(figures.latency_p50_ms),
            ms(figures.latency_p99_ms)
        );
        if figures.multiple_terminal > 0 {
            let _ = writeln!(
                text,
                "{}",
                style(format!(
                    "orders with more than one terminal event: {}",
                    figures.multiple_terminal
                ))
                .red()
            );
        }
        let _ = writeln!(
            text,
            "{:<14} {:<22} {:>8} {:>13}  state",
            "worker", "http", "lag", "dead letters"
        );
        for (name, (http, metrics, running)) in workers {
            let state = if !running {
                style("exited").red().to_string()
            } else if metrics.up {
                style("up").green().to_string()
            } else {
                style("no answer").yellow().to_string()
            };
            let dead = if metrics.dead_lettered > 0 {
                style(metrics.dead_lettered).red().to_string()
            } else {
                metrics.dead_lettered.to_string()
            };
            let _ = writeln!(
                text,
                "{name:<14} {:<22} {:>8} {:>13}  {state}",
                http.as_deref().unwrap_or("-"),
                metrics.lag,
                dead
            );
        }
        let _ = writeln!(text, "{}", style("Ctrl-C stops everything").dim());
        let _ = term.clear_last_lines(self.drawn);
        let _ = term.write_str(&text);
        self.drawn = text.lines().count();
    }

    /// Forgets the drawn lines, so later output starts below them.
    pub fn release(&mut self) {
        self.drawn = 0;
    }
}

fn ms(value: Option<u32>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
}
