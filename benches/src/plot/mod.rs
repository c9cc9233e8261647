//! SVG plots of `pi-bench load` and `pi-bench compare` (plotters, SVG
//! backend, no font files: text is drawn as SVG `<text>`).
//!
//! Every measured value is drawn as a marker at its median (or mean) with
//! its 95% interval as a bar. Lines join two points only when both are
//! summaries of several samples ([`joined`]), never two single samples.
//! Point labels are placed so that they do not overlap ([`labels`]).

pub mod labels;

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use labels::{Anchor, Rect};

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plot: {e}")
}

/// A short tick label: 3 significant digits, k/M/G for large values.
fn tick(v: &f64) -> String {
    let v = *v;
    let (x, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else if x.abs() >= 1.0 {
        2
    } else {
        3
    };
    let mut t = format!("{x:.digits$}");
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{t}{suffix}")
}

/// A linear range from 0 to a little above the largest of `vs`.
fn range(vs: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let hi = vs.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    if hi > 0.0 { 0.0..hi * 1.15 } else { 0.0..1.0 }
}

/// One arrival rate's point of a latency curve (seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct RatePoint {
    /// Arrival rate, requests per second.
    pub rate: f64,
    /// Requests measured.
    pub n: usize,
    /// Mean latency.
    pub mean: f64,
    /// 95% interval of the mean, if there is one.
    pub interval: Option<(f64, f64)>,
    /// The tail percentile drawn (p99 or p95), if supported.
    pub tail: Option<f64>,
}

/// One model's latency curve.
pub struct Curve {
    /// Legend label.
    pub label: String,
    /// Points in any order.
    pub points: Vec<RatePoint>,
}

/// Which consecutive points (by index) to join with a line: both must
/// summarise at least two samples (`ns`: samples per point).
pub fn joined(ns: &[usize]) -> Vec<(usize, usize)> {
    (1..ns.len())
        .filter(|&i| ns[i - 1] >= 2 && ns[i] >= 2)
        .map(|i| (i - 1, i))
        .collect()
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    xs: std::ops::Range<f64>,
    ys: std::ops::Range<f64>,
) -> Result<Chart<'a, 'b>> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// A vertical interval bar with caps from `lo` to `hi` at `x`.
fn bar(chart: &mut Chart<'_, '_>, x: f64, lo: f64, hi: f64, col: RGBColor) -> Result<()> {
    let style = col.stroke_width(1);
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(x, lo), (x, hi)],
            style,
        )))
        .map_err(err)?;
    for y in [lo, hi] {
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x, y)) + PathElement::new(vec![(-4, 0), (4, 0)], style),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// Mean latency against arrival rate, one colour per model: markers with
/// the 95% interval of the mean, lines only between points that have one
/// (several requests each), and `tail_name` (`p99`, `p95`) dashed where every point of the
/// curve supports it.
pub fn latency_vs_rate(path: &Path, title: &str, tail_name: &str, curves: &[Curve]) -> Result<()> {
    // The legend goes in a panel right of the chart, where it covers nothing.
    let longest = curves
        .iter()
        .map(|c| c.label.chars().count())
        .max()
        .unwrap_or(0);
    let legend_w = (labels::text_size(&format!("{:w$} mean", "", w = longest), 13.0).0 + 50.0)
        .clamp(120.0, 480.0) as u32;
    let root = SVGBackend::new(path, (900 + legend_w, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(900);
    let xs = range(curves.iter().flat_map(|c| c.points.iter().map(|p| p.rate)));
    let ys = range(curves.iter().flat_map(|c| {
        c.points
            .iter()
            .flat_map(|p| [Some(p.mean), p.interval.map(|i| i.1), p.tail])
            .flatten()
    }));
    let mut chart = chart(
        &left,
        title,
        "arrival rate (requests/s)",
        "latency (s)",
        xs,
        ys,
    )?;
    let mut legend: Vec<(String, RGBColor, bool)> = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        let col = color(i);
        let mut pts = c.points.clone();
        pts.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        // A point without an interval counts as a single sample.
        let ns: Vec<usize> = pts.iter().map(|p| p.interval.map_or(1, |_| p.n)).collect();
        chart
            .draw_series(joined(&ns).iter().map(|&(a, b)| {
                PathElement::new(
                    vec![(pts[a].rate, pts[a].mean), (pts[b].rate, pts[b].mean)],
                    col.stroke_width(2),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.rate, p.mean), 3, col.filled())),
            )
            .map_err(err)?;
        for p in &pts {
            if let Some((lo, hi)) = p.interval {
                bar(&mut chart, p.rate, lo, hi, col)?;
            }
        }
        legend.push((format!("{} mean", c.label), col, false));
        if pts.iter().all(|p| p.tail.is_some()) && pts.len() > 1 {
            chart
                .draw_series(DashedLineSeries::new(
                    pts.iter().filter_map(|p| Some((p.rate, p.tail?))),
                    6,
                    4,
                    col.stroke_width(1),
                ))
                .map_err(err)?;
            legend.push((format!("{} {tail_name}", c.label), col, true));
        }
    }
    for (k, (text, col, dashed)) in legend.iter().enumerate() {
        let y = 60 + 20 * k as i32;
        let style = col.stroke_width(if *dashed { 1 } else { 2 });
        let sample = if *dashed {
            vec![vec![(5, y), (13, y)], vec![(19, y), (27, y)]]
        } else {
            vec![vec![(5, y), (27, y)]]
        };
        for seg in sample {
            right.draw(&PathElement::new(seg, style)).map_err(err)?;
        }
        let font = ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        right
            .draw(&Text::new(text.clone(), (34, y), font))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// A labelled point: the median of `n` samples with its interval.
pub struct Point {
    /// Text next to the point.
    pub label: String,
    /// x.
    pub x: f64,
    /// y (median).
    pub y: f64,
    /// 95% interval of y, drawn as a bar when there are several samples.
    pub interval: Option<(f64, f64)>,
}

/// Font size of point labels.
const LABEL_PX: f64 = 13.0;

/// Labelled points with interval bars (axes from 0); labels placed apart.
pub fn scatter(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[Point],
) -> Result<()> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xs = range(points.iter().map(|p| p.x));
    let ys = range(
        points
            .iter()
            .flat_map(|p| [p.y, p.interval.map_or(p.y, |i| i.1)]),
    );
    let mut chart = chart(&root, title, x_desc, y_desc, xs, ys)?;
    let px = |c: &Chart<'_, '_>, x: f64, y: f64| {
        let (a, b) = c.backend_coord(&(x, y));
        (f64::from(a), f64::from(b))
    };
    let mut obstacles = Vec::new();
    let mut anchors = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let col = color(i);
        chart
            .draw_series(std::iter::once(Circle::new((p.x, p.y), 5, col.filled())))
            .map_err(err)?;
        let (x, y) = px(&chart, p.x, p.y);
        obstacles.push(Rect::around(x, y, 6.0));
        if let Some((lo, hi)) = p.interval {
            bar(&mut chart, p.x, lo, hi, col)?;
            let (_, top) = px(&chart, p.x, hi);
            let (_, bottom) = px(&chart, p.x, lo);
            obstacles.push(Rect {
                x0: x - 5.0,
                y0: top - 1.0,
                x1: x + 5.0,
                y1: bottom + 1.0,
            });
        }
        let (w, h) = labels::text_size(&p.label, LABEL_PX);
        anchors.push(Anchor { x, y, w, h });
    }
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let bounds = Rect {
        x0: f64::from(xr.start),
        y0: f64::from(yr.start),
        x1: f64::from(xr.end),
        y1: f64::from(yr.end),
    };
    for (i, (p, a)) in labels::place(&anchors, &obstacles, bounds)
        .iter()
        .zip(&anchors)
        .enumerate()
    {
        let col = color(i);
        let (x, h) = match p.align {
            labels::Align::Left => (p.rect.x0, HPos::Left),
            labels::Align::Center => ((p.rect.x0 + p.rect.x1) / 2.0, HPos::Center),
            labels::Align::Right => (p.rect.x1, HPos::Right),
        };
        if p.leader {
            // From the point to the middle of the label's near edge.
            let ty = a.y.clamp(p.rect.y0, p.rect.y1);
            root.draw(&PathElement::new(
                vec![
                    (a.x.round() as i32, a.y.round() as i32),
                    (x.round() as i32, ty.round() as i32),
                ],
                col.mix(0.6).stroke_width(1),
            ))
            .map_err(err)?;
        }
        let font = ("sans-serif", LABEL_PX)
            .into_font()
            .color(&col)
            .pos(Pos::new(h, VPos::Top));
        root.draw(&Text::new(
            points[i].label.clone(),
            (x.round() as i32, p.rect.y0.round() as i32),
            font,
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick(&0.30000000000000004), "0.3");
        assert_eq!(tick(&2.0), "2");
        assert_eq!(tick(&139_322_368.0), "139M");
        assert_eq!(tick(&250_000.0), "250k");
        assert_eq!(tick(&1.25e9), "1.25G");
    }

    #[test]
    fn lines_never_join_single_samples() {
        assert_eq!(joined(&[1, 1]), []);
        assert_eq!(joined(&[20, 1, 20, 20]), [(2, 3)]);
        assert_eq!(joined(&[2, 5, 100]), [(0, 1), (1, 2)]);
        assert_eq!(joined(&[]), []);
    }

    #[test]
    fn plots_are_svg_with_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lat.svg");
        let pt = |rate, n, mean: f64| RatePoint {
            rate,
            n,
            mean,
            interval: (n > 1).then_some((mean * 0.9, mean * 1.1)),
            tail: (n > 1).then_some(mean * 2.0),
        };
        latency_vs_rate(
            &p,
            "latency",
            "p95",
            &[Curve {
                label: "net-a".into(),
                points: vec![pt(0.5, 20, 1.0), pt(1.0, 20, 1.2), pt(2.0, 20, 4.0)],
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("net-a mean") && svg.contains("net-a p95"));
        assert!(svg.contains("arrival rate"));
        let q = dir.path().join("s.svg");
        scatter(
            &q,
            "t",
            "ReLUs",
            "online s",
            &[
                Point {
                    label: "hrn".into(),
                    x: 1e5,
                    y: 0.3,
                    interval: Some((0.25, 0.35)),
                },
                Point {
                    label: "hrn-b".into(),
                    x: 1.01e5,
                    y: 0.3,
                    interval: None,
                },
            ],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&q).unwrap();
        assert!(svg.contains("\nhrn\n") && svg.contains("\nhrn-b\n") && svg.contains("ReLUs"));
    }
}
