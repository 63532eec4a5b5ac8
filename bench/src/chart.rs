//! Line charts as SVG, written by hand: panels of series against a shared x axis (offered
//! load), side by side in one figure. Linear or logarithmic y axes, "nice" ticks, a legend.

use std::fmt::Write as _;

/// One line on a panel.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// A CSS colour.
    pub color: &'static str,
    /// Points in x order; points with a non-positive y are left out on a log axis.
    pub points: Vec<(f64, f64)>,
}

/// One chart.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Above the chart.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// A logarithmic y axis (for latency).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// Colours for series, distinguishable in print.
pub const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 96.0;

/// Ticks at 1, 2 or 5 × 10ⁿ covering `0..=max`.
pub fn linear_ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let rough = max / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// Decades (…, 0.1, 1, 10, …) covering `min..=max` (both above 0).
pub fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let (lo, hi) = (min.log10().floor() as i32, max.log10().ceil() as i32);
    let hi = hi.max(lo + 1);
    (lo..=hi).map(|e| 10f64.powi(e)).collect()
}

fn label(v: f64) -> String {
    if v >= 1000.0 {
        let k = v / 1000.0;
        if k.fract() == 0.0 {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else if v >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Draws one panel at horizontal offset `dx`.
fn panel(out: &mut String, p: &Panel, dx: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let points: Vec<(f64, f64)> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(_, y)| !p.log_y || *y > 0.0)
        .collect();
    let x_max = points.iter().map(|(x, _)| *x).fold(0.0, f64::max);
    let x_ticks = linear_ticks(x_max);
    let x_top = *x_ticks.last().unwrap_or(&1.0);
    let y_ticks = if p.log_y {
        let min = points.iter().map(|(_, y)| *y).fold(f64::INFINITY, f64::min);
        let max = points.iter().map(|(_, y)| *y).fold(0.0, f64::max);
        if points.is_empty() {
            vec![0.1, 1.0]
        } else {
            log_ticks(min, max)
        }
    } else {
        linear_ticks(points.iter().map(|(_, y)| *y).fold(0.0, f64::max))
    };
    let (y_lo, y_hi) = (y_ticks[0], *y_ticks.last().unwrap_or(&1.0));
    let sx = |x: f64| dx + LEFT + x / x_top * plot_w;
    let sy = |y: f64| {
        let f = if p.log_y {
            (y.log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10())
        } else {
            (y - y_lo) / (y_hi - y_lo)
        };
        TOP + plot_h * (1.0 - f)
    };
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="20" font-size="14" font-weight="bold" text-anchor="middle">{}</text>"#,
        dx + LEFT + plot_w / 2.0,
        escape(&p.title)
    );
    for &t in &y_ticks {
        let y = sy(t);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            dx + LEFT,
            dx + LEFT + plot_w,
            dx + LEFT - 6.0,
            y + 4.0,
            label(t)
        );
    }
    for &t in &x_ticks {
        let x = sx(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            TOP,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            label(t)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{TOP}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#333"/>"##,
        dx + LEFT
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
        dx + LEFT + plot_w / 2.0,
        TOP + plot_h + 34.0,
        escape(&p.x_label)
    );
    let (ly, lx) = (TOP + plot_h / 2.0, dx + 16.0);
    let _ = writeln!(
        out,
        r#"<text x="{lx:.1}" y="{ly:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {lx:.1} {ly:.1})">{}</text>"#,
        escape(&p.y_label)
    );
    for (i, s) in p.series.iter().enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|(_, y)| !p.log_y || *y > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            pts.join(" ")
        );
        for pt in &pts {
            let (x, y) = pt.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                r#"<circle cx="{x}" cy="{y}" r="3" fill="{}"/>"#,
                s.color
            );
        }
        // Legend below the x label, two entries per row.
        let (col, row) = (i % 2, i / 2);
        let (x, y) = (
            dx + LEFT + col as f64 * plot_w / 2.0,
            TOP + plot_h + 52.0 + row as f64 * 16.0,
        );
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            y - 4.0,
            x + 18.0,
            y - 4.0,
            s.color,
            x + 24.0,
            y,
            escape(&s.name)
        );
    }
}

/// A figure of panels side by side, as a standalone SVG document.
pub fn figure(panels: &[Panel]) -> String {
    let width = WIDTH * panels.len().max(1) as f64;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{HEIGHT:.0}" viewBox="0 0 {width:.0} {HEIGHT:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut out, p, i as f64 * WIDTH);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_that_cover_the_data() {
        assert_eq!(
            linear_ticks(9_000.0),
            [0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0]
        );
        assert_eq!(
            linear_ticks(1.0),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(log_ticks(0.3, 42.0), [0.1, 1.0, 10.0, 100.0]);
        assert_eq!(log_ticks(1.0, 1.0), [1.0, 10.0]);
    }

    #[test]
    fn a_figure_has_a_line_and_a_legend_per_series() {
        let panel = Panel {
            title: "throughput <sqlite>".into(),
            x_label: "offered events/s".into(),
            y_label: "accepted events/s".into(),
            log_y: false,
            series: vec![
                Series {
                    name: "bare".into(),
                    color: PALETTE[0],
                    points: vec![(500.0, 500.0), (1000.0, 1000.0)],
                },
                Series {
                    name: "weft".into(),
                    color: PALETTE[1],
                    points: vec![(500.0, 480.0), (1000.0, 900.0)],
                },
            ],
        };
        let latency = Panel {
            log_y: true,
            ..panel.clone()
        };
        let svg = figure(&[panel, latency]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 8);
        assert!(svg.contains("throughput &lt;sqlite&gt;"), "text is escaped");
        assert!(svg.contains(r#"width="960""#));
    }
}
