//! Where to put the label of each point of a scatter plot so that no two
//! labels overlap, and no label covers a point or an interval bar.
//!
//! Greedy, in pixel space: for each point in turn, try boxes around it in
//! eight directions at growing distances (right first, then left, above,
//! below, the diagonals), and take the first that stays inside the plotting
//! area and touches neither a label placed before nor an obstacle. Labels
//! placed away from their point get a leader line. If nothing fits, the
//! candidate with the least overlap is taken.

/// A rectangle in pixels (y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left.
    pub x0: f64,
    /// Top.
    pub y0: f64,
    /// Right.
    pub x1: f64,
    /// Bottom.
    pub y1: f64,
}

impl Rect {
    /// The square of half-side `r` around (x, y).
    pub fn around(x: f64, y: f64, r: f64) -> Self {
        Self {
            x0: x - r,
            y0: y - r,
            x1: x + r,
            y1: y + r,
        }
    }

    /// Overlap area with `o` (0 if disjoint or only touching).
    pub fn overlap(&self, o: &Rect) -> f64 {
        let w = self.x1.min(o.x1) - self.x0.max(o.x0);
        let h = self.y1.min(o.y1) - self.y0.max(o.y0);
        if w > 0.0 && h > 0.0 { w * h } else { 0.0 }
    }

    /// Whether it lies within `b`.
    pub fn inside(&self, b: &Rect) -> bool {
        self.x0 >= b.x0 && self.y0 >= b.y0 && self.x1 <= b.x1 && self.y1 <= b.y1
    }
}

/// A label to place: its point (pixels) and the size of its text.
#[derive(Clone, Copy, Debug)]
pub struct Anchor {
    /// The point, x.
    pub x: f64,
    /// The point, y.
    pub y: f64,
    /// Text width.
    pub w: f64,
    /// Text height.
    pub h: f64,
}

/// Which edge of its box a label's text is anchored to: the one facing
/// its point, so that a text narrower than estimated still starts at the
/// point (or its leader line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text starts at the box's left edge (box right of the point).
    Left,
    /// Text centred in the box (box above or below the point).
    Center,
    /// Text ends at the box's right edge (box left of the point).
    Right,
}

/// Where a label went.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placed {
    /// The text's box (its estimated size).
    pub rect: Rect,
    /// How the text sits in the box.
    pub align: Align,
    /// Whether to draw a line from the point to the box (placed far out).
    pub leader: bool,
}

/// The size of `text` at `size` px in a sans-serif font, estimated on the
/// generous side (0.56 em per character; such labels average about 0.5),
/// since the SVG is laid out by whoever views it.
pub fn text_size(text: &str, size: f64) -> (f64, f64) {
    (0.56 * size * text.chars().count() as f64, size)
}

/// Distances (pixels) from the point to the box tried, in order.
const RADII: [f64; 7] = [7.0, 14.0, 24.0, 38.0, 56.0, 80.0, 110.0];

/// Box of size (w, h) in direction `d` (0..8) at distance `r` from (x, y).
fn candidate(a: &Anchor, d: usize, r: f64) -> Rect {
    let (x, y, w, h) = (a.x, a.y, a.w, a.h);
    let q = r * std::f64::consts::FRAC_1_SQRT_2;
    let (x0, y0) = match d {
        0 => (x + r, y - h / 2.0),     // right
        1 => (x - r - w, y - h / 2.0), // left
        2 => (x - w / 2.0, y - r - h), // above
        3 => (x - w / 2.0, y + r),     // below
        4 => (x + q, y - q - h),       // above right
        5 => (x - q - w, y - q - h),   // above left
        6 => (x + q, y + q),           // below right
        _ => (x - q - w, y + q),       // below left
    };
    Rect {
        x0,
        y0,
        x1: x0 + w,
        y1: y0 + h,
    }
}

/// Places a label for every anchor, in order, inside `bounds`, avoiding
/// `obstacles` (markers, bars) and the labels placed before.
pub fn place(anchors: &[Anchor], obstacles: &[Rect], bounds: Rect) -> Vec<Placed> {
    let mut placed: Vec<Placed> = Vec::with_capacity(anchors.len());
    for a in anchors {
        let mut best: Option<(f64, Placed)> = None;
        'search: for (ri, &r) in RADII.iter().enumerate() {
            for d in 0..8 {
                let rect = candidate(a, d, r);
                let cost: f64 = if rect.inside(&bounds) {
                    placed
                        .iter()
                        .map(|p| p.rect.overlap(&rect))
                        .chain(obstacles.iter().map(|o| o.overlap(&rect)))
                        .sum()
                } else {
                    f64::INFINITY
                };
                let align = match d {
                    0 | 4 | 6 => Align::Left,
                    1 | 5 | 7 => Align::Right,
                    _ => Align::Center,
                };
                let p = Placed {
                    rect,
                    align,
                    leader: ri >= 2,
                };
                if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                    best = Some((cost, p));
                }
                if cost == 0.0 {
                    break 'search;
                }
            }
        }
        if let Some((_, p)) = best {
            placed.push(p);
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Rect = Rect {
        x0: 0.0,
        y0: 0.0,
        x1: 800.0,
        y1: 500.0,
    };

    fn anchors(points: &[(f64, f64, &str)]) -> Vec<Anchor> {
        points
            .iter()
            .map(|&(x, y, t)| {
                let (w, h) = text_size(t, 13.0);
                Anchor { x, y, w, h }
            })
            .collect()
    }

    fn check(points: &[(f64, f64, &str)]) -> Vec<Placed> {
        let a = anchors(points);
        let markers: Vec<Rect> = a.iter().map(|a| Rect::around(a.x, a.y, 5.0)).collect();
        let p = place(&a, &markers, BOUNDS);
        assert_eq!(p.len(), points.len());
        for (i, x) in p.iter().enumerate() {
            assert!(x.rect.inside(&BOUNDS), "{i}: {x:?}");
            for m in &markers {
                assert_eq!(x.rect.overlap(m), 0.0, "label {i} covers a point");
            }
            for (j, y) in p.iter().enumerate().skip(i + 1) {
                assert_eq!(x.rect.overlap(&y.rect), 0.0, "labels {i} and {j} overlap");
            }
        }
        p
    }

    #[test]
    fn labels_of_nearby_points_do_not_overlap() {
        // README's comparison: hrn-6x6x2x and hrn-5x7x2x land a few pixels apart.
        let p = check(&[
            (600.0, 200.0, "hrn-6x6x2x"),
            (596.0, 203.0, "hrn-5x7x2x"),
            (640.0, 190.0, "hrn-7x5x2x"),
            (560.0, 210.0, "hrn-5x5x3x"),
            (700.0, 150.0, "resnet18(m=64)"),
        ]);
        // hrn-7x5x2x's point sits where hrn-6x6x2x's label would go by default.
        assert!(p[0].rect.overlap(&Rect::around(640.0, 190.0, 5.0)) == 0.0);
    }

    #[test]
    fn a_lone_label_goes_right_of_its_point() {
        let p = check(&[(100.0, 100.0, "resnet18")]);
        assert_eq!((p[0].rect.x0, p[0].rect.y0), (107.0, 93.5));
        assert!(!p[0].leader && p[0].align == Align::Left);
        // At the right edge it goes left, its text ending next to the point.
        let p = check(&[(790.0, 100.0, "resnet18")]);
        assert_eq!((p[0].rect.x1, p[0].align), (783.0, Align::Right));
    }

    #[test]
    fn labels_of_coincident_points_and_near_edges_fit() {
        check(&[
            (400.0, 250.0, "a [ot]"),
            (400.0, 250.0, "b [ot]"),
            (400.0, 250.0, "c [ot]"),
            (400.0, 250.0, "d [ot]"),
            (795.0, 5.0, "top-right-corner"),
            (5.0, 495.0, "bottom-left"),
        ]);
    }

    #[test]
    fn interval_bars_are_avoided() {
        let a = anchors(&[(300.0, 200.0, "net")]);
        // A bar of another point passing just right of this one.
        let bar = Rect {
            x0: 308.0,
            y0: 100.0,
            x1: 312.0,
            y1: 300.0,
        };
        let p = place(&a, &[bar], BOUNDS);
        assert_eq!(p[0].rect.overlap(&bar), 0.0);
    }
}
