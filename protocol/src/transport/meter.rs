//! Byte counters per direction and per label.
//!
//! Payload bytes (what the protocol asked to send) are counted per label, so a
//! report can say how much each phase and layer cost on the wire. Framing
//! overhead of a byte-stream channel (the hello and frame headers) is counted
//! apart and is not part of any label; TLS record overhead is not counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bytes sent and received under one label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    framing: Traffic,
}

/// A snapshot of a [`Meter`] for reports (serialises to JSON as
/// `{"total": {...}, "framing": {...}, "by_label": {"offline/conv1": {...}}}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterReport {
    /// Payload bytes summed over all labels.
    pub total: Traffic,
    /// Framing overhead (hello, frame headers), not included in `total`.
    pub framing: Traffic,
    /// Payload bytes per label, in label order.
    pub by_label: BTreeMap<String, Traffic>,
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
            self.by_label
                .insert(self.current.clone(), Traffic::default());
        }
        self.by_label
            .get_mut(&self.current)
            .expect("inserted above")
    }

    /// Records `n` bytes sent under the current label.
    pub fn add_sent(&mut self, n: usize) {
        self.entry().sent += n as u64;
    }

    /// Records `n` bytes received under the current label.
    pub fn add_received(&mut self, n: usize) {
        self.entry().received += n as u64;
    }

    /// Records `n` bytes of framing overhead sent (not attributed to a label).
    pub fn add_framing_sent(&mut self, n: usize) {
        self.framing.sent += n as u64;
    }

    /// Records `n` bytes of framing overhead received.
    pub fn add_framing_received(&mut self, n: usize) {
        self.framing.received += n as u64;
    }

    /// Framing overhead so far (zero for the in-memory duplex).
    pub fn framing(&self) -> Traffic {
        self.framing
    }

    /// A serialisable snapshot of all counters.
    pub fn report(&self) -> MeterReport {
        MeterReport {
            total: self.total(""),
            framing: self.framing,
            by_label: self.by_label.clone(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_sums_labels_and_keeps_framing_apart() {
        let mut m = Meter::default();
        m.set_label("offline/conv1");
        m.add_sent(10);
        m.add_framing_sent(4);
        m.set_label("online/relu1");
        m.add_received(7);
        m.add_framing_received(4);
        let r = m.report();
        assert_eq!(
            r.total,
            Traffic {
                sent: 10,
                received: 7
            }
        );
        assert_eq!(
            r.framing,
            Traffic {
                sent: 4,
                received: 4
            }
        );
        assert_eq!(r.by_label.len(), 2);
        assert_eq!(m.total("offline").sent, 10);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["by_label"]["online/relu1"]["received"], 7);
        assert_eq!(json["total"]["sent"], 10);
        let back: MeterReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
