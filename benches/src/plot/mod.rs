//! SVG plots of `pi-bench load` and `pi-bench compare` (plotters, SVG
//! backend, no font files: text is drawn as SVG `<text>`).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

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

/// One model's latency curve: (arrival rate per second, mean, p99) seconds.
pub struct Curve {
    /// Legend label.
    pub label: String,
    /// Points in increasing rate.
    pub points: Vec<(f64, f64, f64)>,
}

/// Mean (solid, dots) and p99 (dashed) latency against arrival rate, one
/// colour per model.
pub fn latency_vs_rate(path: &Path, title: &str, curves: &[Curve]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xs = range(curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)));
    let ys = range(
        curves
            .iter()
            .flat_map(|c| c.points.iter().flat_map(|p| [p.1, p.2])),
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("arrival rate (requests/s)")
        .y_desc("latency (s)")
        .label_style(("sans-serif", 14))
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    for (i, c) in curves.iter().enumerate() {
        let col = color(i);
        let mut pts = c.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                col.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("{} mean", c.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, col.filled())))
            .map_err(err)?;
        chart
            .draw_series(DashedLineSeries::new(
                pts.iter().map(|p| (p.0, p.2)),
                6,
                4,
                col.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("{} p99", c.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], col.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// A labelled point.
pub struct Point {
    /// Text next to the point.
    pub label: String,
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
}

/// Labelled points (axes from 0).
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
    let ys = range(points.iter().map(|p| p.y));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
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
    for (i, p) in points.iter().enumerate() {
        let col = color(i);
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((p.x, p.y))
                    + Circle::new((0, 0), 5, col.filled())
                    + Text::new(
                        p.label.clone(),
                        (8, -14),
                        ("sans-serif", 13).into_font().color(&col),
                    ),
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
    fn plots_are_svg_with_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lat.svg");
        latency_vs_rate(
            &p,
            "latency",
            &[Curve {
                label: "net-a".into(),
                points: vec![(0.5, 1.0, 1.5), (1.0, 1.2, 3.0), (2.0, 4.0, 9.0)],
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("net-a mean") && svg.contains("arrival rate")
        );
        let q = dir.path().join("s.svg");
        scatter(
            &q,
            "t",
            "ReLUs",
            "online s",
            &[Point {
                label: "hrn".into(),
                x: 1e5,
                y: 0.3,
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&q).unwrap();
        assert!(svg.contains("\nhrn\n") && svg.contains("ReLUs"));
    }
}
