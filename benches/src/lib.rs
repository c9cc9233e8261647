//! Benchmark helpers shared by the criterion benches and the `pi-bench` binary.
//!
//! Imports point down: [`stats`] and [`machine`] depend on nothing here;
//! [`server_process`] and [`workload`] on [`machine`]; the runners [`e2e`]
//! and [`load`] on those; [`compare`] (tables, JSON) on [`load`] and
//! [`plot`], [`scale`] (the scaling study) on [`e2e`] and [`plot`]. The primitive benchmarks ([`gc`], [`ot`], [`he`], [`tls`])
//! stand alone.

pub mod compare;
pub mod e2e;
pub mod gc;
pub mod he;
pub mod load;
pub mod machine;
pub mod ot;
pub mod plot;
pub mod scale;
pub mod server_process;
pub mod stats;
pub mod tls;
pub mod workload;
