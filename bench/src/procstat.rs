//! CPU time and memory of a process, read from `/proc`: what each arm and the broker cost.

use anyhow::Context as _;
use procfs::process::Process;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Resident set size now, bytes.
    pub rss_bytes: u64,
    /// Peak resident set size so far (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
}

/// Reads `pid`'s counters.
pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    let process = Process::new(pid).with_context(|| format!("process {pid}"))?;
    let stat = process
        .stat()
        .with_context(|| format!("/proc/{pid}/stat"))?;
    let status = process
        .status()
        .with_context(|| format!("/proc/{pid}/status"))?;
    let ticks = procfs::ticks_per_second() as f64;
    Ok(Sample {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        rss_bytes: status.vmrss.unwrap_or(0) * 1024,
        peak_rss_bytes: status.vmhwm.unwrap_or(0) * 1024,
    })
}

/// A process's CPU seconds over wall-clock time, read every `interval` on a thread of its own,
/// so the CPU spent between two moments (e.g. the first and the last output record's
/// timestamps) can be read off afterwards.
#[derive(Debug)]
pub struct CpuTrace {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(i64, f64)>>>,
}

impl CpuTrace {
    /// Starts tracing `pid`.
    pub fn start(pid: u32, interval: std::time::Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut points = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(sample) = sample(pid) {
                        points.push((now_millis(), sample.cpu_seconds));
                    }
                    std::thread::sleep(interval);
                }
                if let Ok(sample) = sample(pid) {
                    points.push((now_millis(), sample.cpu_seconds));
                }
                points
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops tracing and returns the trace.
    pub fn finish(mut self) -> Trace {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Trace {
            points: self
                .thread
                .take()
                .and_then(|thread| thread.join().ok())
                .unwrap_or_default(),
        }
    }
}

/// CPU seconds at wall-clock milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    points: Vec<(i64, f64)>,
}

impl Trace {
    /// CPU seconds at `at` (Unix milliseconds), interpolated between the readings around it.
    pub fn cpu_at(&self, at: i64) -> Option<f64> {
        let after = self.points.iter().position(|(time, _)| *time >= at)?;
        let (t1, c1) = self.points[after];
        if after == 0 || t1 == at {
            return Some(c1);
        }
        let (t0, c0) = self.points[after - 1];
        Some(c0 + (c1 - c0) * (at - t0) as f64 / (t1 - t0) as f64)
    }

    /// CPU seconds spent between `from` and `to` (Unix milliseconds).
    pub fn cpu_between(&self, from: i64, to: i64) -> Option<f64> {
        Some(self.cpu_at(to)? - self.cpu_at(from)?)
    }
}

/// Now, in Unix milliseconds (the unit of Kafka record timestamps).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_cpu_between_readings() {
        let trace = Trace {
            points: vec![(1000, 1.0), (1100, 2.0), (1200, 2.0)],
        };
        assert_eq!(trace.cpu_at(1000), Some(1.0));
        assert_eq!(trace.cpu_at(1050), Some(1.5));
        assert_eq!(trace.cpu_between(1050, 1200), Some(0.5));
        assert_eq!(trace.cpu_at(1300), None, "after the last reading");
        assert_eq!(trace.cpu_at(900), Some(1.0), "before the first: the first");
    }

    #[test]
    fn reads_this_process_and_sees_its_cpu_time_grow() {
        let before = sample(std::process::id()).expect("own counters");
        // Burn ~50 ms of CPU.
        let started = std::time::Instant::now();
        let mut x = 0_u64;
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = sample(std::process::id()).expect("own counters");
        assert!(
            after.cpu_seconds > before.cpu_seconds,
            "{before:?} -> {after:?}"
        );
        assert!(after.rss_bytes > 0 && after.peak_rss_bytes >= after.rss_bytes);
    }
}
