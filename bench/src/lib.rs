//! The performance suite behind `retail-bench` (issue 7): measurements of the workers on the
//! local broker, each printed as a Markdown table. `bench/run` is the one command.

pub mod arms;
pub mod hops;
pub mod procstat;
pub mod stack;
