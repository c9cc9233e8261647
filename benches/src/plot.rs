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

/// A log-scale range around `vs` (a factor of 1.5 margin each side).
fn log_range(vs: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = vs
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return 0.1..10.0;
    }
    (lo / 1.5)..(hi * 1.5)
}

/// One model's latency curve: (arrival rate per second, mean, p99) seconds.
pub struct Curve {
    /// Legend label.
    pub label: String,
    /// Points in increasing rate.
    pub points: Vec<(f64, f64, f64)>,
}

/// Mean (solid, dots) and p99 (dashed) latency against arrival rate,
/// log-log, one colour per model.
pub fn latency_vs_rate(path: &Path, title: &str, curves: &[Curve]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xs = log_range(curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)));
    let ys = log_range(curves.iter().flat_map(|c| c.points.iter().flat_map(|p| [p.1, p.2])));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(xs.log_scale(), ys.log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("arrival rate (requests/s)")
        .y_desc("latency (s)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (i, c) in curves.iter().enumerate() {
        let col = color(i);
        let mut pts = c.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), col.stroke_width(2)))
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
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 8, y)], col.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
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

/// Labelled points on log-log axes.
pub fn scatter(path: &Path, title: &str, x_desc: &str, y_desc: &str, points: &[Point]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xs = log_range(points.iter().map(|p| p.x));
    let ys = log_range(points.iter().map(|p| p.y));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(xs.log_scale(), ys.log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (i, p) in points.iter().enumerate() {
        let col = color(i);
        chart
            .draw_series(std::iter::once(Circle::new((p.x, p.y), 5, col.filled())))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                p.label.clone(),
                (p.x, p.y),
                ("sans-serif", 12).into_font().color(&col),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_with_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lat.svg");
        latency_vs_rate(
            &p,
            "latency",
            &[Curve { label: "net-a".into(), points: vec![(0.5, 1.0, 1.5), (1.0, 1.2, 3.0), (2.0, 4.0, 9.0)] }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("net-a mean") && svg.contains("arrival rate"));
        let q = dir.path().join("s.svg");
        scatter(&q, "t", "ReLUs", "online s", &[Point { label: "hrn".into(), x: 1e5, y: 0.3 }]).unwrap();
        let svg = std::fs::read_to_string(&q).unwrap();
        assert!(svg.contains("\nhrn\n") && svg.contains("ReLUs"));
    }
}
