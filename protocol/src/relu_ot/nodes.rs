//! State shared by both online runs: the parties' shares of the tree nodes
//! and the stage of the exchange.

use super::*;

/// Shares of every tree node, node-major: bit of node v at position p is at
/// v·n + p.
pub(super) struct NodeShares {
    pub(super) gt: Vec<u8>,
    pub(super) eq: Vec<u8>,
    pub(super) n: usize,
}

impl NodeShares {
    pub(super) fn new(nodes: usize, n: usize) -> Self {
        Self {
            gt: vec![0; nodes * n],
            eq: vec![0; nodes * n],
            n,
        }
    }
    pub(super) fn gt(&self, v: usize, p: usize) -> u8 {
        self.gt[v * self.n + p]
    }
    pub(super) fn eq(&self, v: usize, p: usize) -> u8 {
        self.eq[v * self.n + p]
    }
    pub(super) fn set(&mut self, v: usize, p: usize, gt: u8, eq: u8) {
        self.gt[v * self.n + p] = gt;
        self.eq[v * self.n + p] = eq;
    }
}

impl Drop for NodeShares {
    fn drop(&mut self) {
        self.gt.zeroize();
        self.eq.zeroize();
    }
}

/// Where a party is in the online exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    Level(usize),
    Final,
    Output,
    Done,
}
