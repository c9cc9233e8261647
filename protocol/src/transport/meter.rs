//! Byte counters per direction and per label.

use std::collections::BTreeMap;

/// Bytes sent and received under one label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Payload bytes this endpoint sent.
    pub sent: u64,
    /// Payload bytes this endpoint received.
    pub received: u64,
}

/// Counts payload bytes per label; the current label applies to new traffic.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    current: String,
    by_label: BTreeMap<String, Traffic>,
}

impl Meter {
    /// Sets the label for subsequent traffic.
    pub fn set_label(&mut self, label: &str) {
        if self.current != label {
            self.current.clear();
            self.current.push_str(label);
        }
    }

    /// The label that applies to new traffic.
    pub fn label(&self) -> &str {
        &self.current
    }

    fn entry(&mut self) -> &mut Traffic {
        if !self.by_label.contains_key(&self.current) {
            self.by_label.insert(self.current.clone(), Traffic::default());
        }
        self.by_label.get_mut(&self.current).expect("inserted above")
    }

    /// Records `n` bytes sent under the current label.
    pub fn add_sent(&mut self, n: usize) {
        self.entry().sent += n as u64;
    }

    /// Records `n` bytes received under the current label.
    pub fn add_received(&mut self, n: usize) {
        self.entry().received += n as u64;
    }

    /// Traffic per label, in label order.
    pub fn by_label(&self) -> &BTreeMap<String, Traffic> {
        &self.by_label
    }

    /// Sum over labels that start with `prefix` (`""` for everything).
    pub fn total(&self, prefix: &str) -> Traffic {
        self.by_label
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .fold(Traffic::default(), |acc, (_, t)| Traffic {
                sent: acc.sent + t.sent,
                received: acc.received + t.received,
            })
    }
}
