//! Benchmark helpers shared by the criterion benches and the `pi-bench` binary.

pub mod tls;
