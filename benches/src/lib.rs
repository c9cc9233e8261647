//! Benchmark helpers shared by the criterion benches and the `pi-bench` binary.

pub mod ot;
pub mod gc;
pub mod he;
pub mod tls;
pub mod e2e;
pub mod load;
pub mod plot;
pub mod compare;
