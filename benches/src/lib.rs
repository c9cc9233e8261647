//! Benchmark helpers shared by the criterion benches and the `pi-bench` binary.

pub mod compare;
pub mod e2e;
pub mod gc;
pub mod he;
pub mod load;
pub mod machine;
pub mod ot;
pub mod plot;
pub mod stats;
pub mod tls;
