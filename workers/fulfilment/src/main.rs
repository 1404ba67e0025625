//! The fulfilment worker of the retail order saga.
//!
//! Its handler and its wiring to the shared worker runtime come with the runtime and workers
//! issues; until then the binary only says so, and exits non-zero so no deployment mistakes it
//! for a running worker.

fn main() -> std::process::ExitCode {
    eprintln!(
        "fulfilment: not implemented yet: the worker runtime (shared/) is the next piece of work"
    );
    std::process::ExitCode::from(2)
}
