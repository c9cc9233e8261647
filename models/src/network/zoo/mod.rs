//! The network families, one file each (as candle's model zoo): each turns
//! its spec into a [`Network`](super::Network) with a shared graph builder.
//!
//! - [`resnet`]: the CIFAR ResNet18 family and DeepReShape's HybReNets (stage
//!   widths m, αm, αβm, αβγm, depths φ1..φ4), the family of
//!   [`NetSpec`](crate::NetSpec); it provides [`Network::new`](super::Network::new).

mod builder;
pub mod resnet;
