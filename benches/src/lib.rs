//! Benchmark helpers shared by the criterion benches and the `pi-bench` binary.

pub mod gc;
pub mod he;
pub mod ot;
