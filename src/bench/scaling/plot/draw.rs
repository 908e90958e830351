//! Drawing one [`Chart`] with `plotters`: the font, the log axes (linear axes over log10 of the
//! values, labelled with the values themselves), the ticks and the colours.

use super::{Chart, PlotError, SeriesPoint};
use plotters::prelude::*;
use std::path::Path;

/// Where Debian, Fedora and Arch keep DejaVu Sans.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Register a font for plotters' text (once per process).
fn font() -> Result<(), PlotError> {
    static FONT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = FONTS.iter().find_map(|p| std::fs::read(p).ok()).ok_or_else(|| FONTS.join(", "))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "not a TrueType font".to_string())
    })
    .clone()
    .map_err(PlotError::NoFont)
}

/// Plot size in pixels.
const SIZE: (u32, u32) = (900, 600);

/// Draw `c` into `path` (SVG or PNG by its extension).
pub fn draw(c: &Chart, path: &Path) -> Result<(), PlotError> {
    font()?;
    let fail = |why: String| PlotError::Draw { path: path.to_path_buf(), why };
    if path.extension().is_some_and(|e| e == "png") {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        render(&root, c).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))
    } else {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        render(&root, c).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))
    }
}

/// A value on an axis: its log10 on a log axis.
fn axis(v: f64, log: bool) -> f64 {
    if log {
        v.max(1e-12).log10()
    } else {
        v
    }
}

/// Tick positions (axis coordinates) for `lo..hi` (axis coordinates).
fn ticks(lo: f64, hi: f64, log: bool, xs: &[f64]) -> Vec<f64> {
    if log && !xs.is_empty() && xs.len() <= 12 {
        // Worker counts: a tick at each one measured.
        return xs.iter().map(|&x| axis(x, true)).collect();
    }
    if log {
        let mut t: Vec<f64> = (lo.floor() as i32..=hi.ceil() as i32).map(f64::from).collect();
        if t.len() <= 3 {
            t = t.iter().flat_map(|d| [*d, d + 2f64.log10(), d + 3f64.log10(), d + 5f64.log10()]).collect();
        }
        return t.into_iter().filter(|v| *v >= lo - 1e-9 && *v <= hi + 1e-9).collect();
    }
    let span = (hi - lo).max(1e-12);
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 7.0).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label: the value (undoing log10 on a log axis), short.
fn tick_label(v: f64, log: bool) -> String {
    let x = if log { 10f64.powf(v) } else { v };
    let a = x.abs();
    if a >= 1e6 {
        let m = format!("{:.3}", x / 1e6);
        format!("{}M", m.trim_end_matches('0').trim_end_matches('.'))
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 10.0 || x == x.round() {
        format!("{:.0}", x)
    } else {
        // Three significant digits, trailing zeros dropped: 0.25, 0.001, 1.5.
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.decimals$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A linear axis over axis coordinates with ticks where we say (plotters' own key points
/// fall between worker counts); labels come from `tick_label`.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl plotters::coord::ranged1d::Ranged for Axis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo).max(1e-12);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            return vec![];
        }
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

fn render<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, c: &Chart) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let pts = || c.series.iter().flat_map(|s| s.points.iter());
    let xs: Vec<f64> = {
        let mut v: Vec<f64> = pts().map(|p| p.x).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let ys = pts().flat_map(|p| [p.min, p.max, p.y]).filter(|v| v.is_finite() && (!c.log_y || *v > 0.0));
    let (mut ylo, mut yhi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !ylo.is_finite() {
        (ylo, yhi) = (0.0, 1.0);
    }
    let (mut y0, mut y1) = (axis(ylo, c.log_y), axis(yhi, c.log_y));
    if c.log_y {
        (y0, y1) = (y0 - 0.1, y1 + 0.1);
    } else {
        // Linear axes start at zero, so "flat" and "half" look like what they are.
        (y0, y1) = (y0.min(0.0), y1 * 1.1 + 1e-9);
    }
    let (mut x0, mut x1) =
        (axis(xs.first().copied().unwrap_or(1.0), c.log_x), axis(xs.last().copied().unwrap_or(10.0), c.log_x));
    let pad = ((x1 - x0) * 0.05).max(0.05);
    (x0, x1) = (x0 - pad, x1 + pad);
    let xt = ticks(x0, x1, c.log_x, if c.name.starts_with("latency") { &[] } else { &xs });
    let yt = ticks(y0, y1, c.log_y, &[]);
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(Axis { lo: x0, hi: x1, ticks: xt }, Axis { lo: y0, hi: y1, ticks: yt })
        .map_err(e)?;
    let (log_x, log_y) = (c.log_x, c.log_y);
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .x_label_formatter(&|v| tick_label(*v, log_x))
        .y_label_formatter(&|v| tick_label(*v, log_y))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(e)?;
    for s in &c.series {
        let (cx, cy) = (|p: &SeriesPoint| axis(p.x, log_x), |v: f64| axis(v, log_y));
        let line: Vec<(f64, f64)> = s.points.iter().filter(|p| !log_y || p.y > 0.0).map(|p| (cx(p), cy(p.y))).collect();
        let col = COLORS[s.color % COLORS.len()];
        if s.ideal {
            chart
                .draw_series(DashedLineSeries::new(line, 6, 4, col.stroke_width(1)))
                .map_err(e)?
                .label(&s.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 10, y), (x + 14, y), (x + 20, y)], col.mix(0.6))
                });
            continue;
        }
        if s.reference {
            chart
                .draw_series(line.iter().map(|&(x, y)| TriangleMarker::new((x, y), 7, col.filled())))
                .map_err(e)?
                .label(&s.label)
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, col.filled()));
            continue;
        }
        chart
            .draw_series(LineSeries::new(line.clone(), col.stroke_width(2)))
            .map_err(e)?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        chart.draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 3, col.filled()))).map_err(e)?;
        let bars = s.points.iter().filter(|p| p.n > 1 && p.max > p.min && (!log_y || p.min > 0.0));
        chart
            .draw_series(
                bars.map(|p| ErrorBar::new_vertical(cx(p), cy(p.min), cy(p.y), cy(p.max), col.stroke_width(1), 8)),
            )
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(if c.log_y || c.name.ends_with("cdf") {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_labels() {
        assert_eq!(ticks(0.0, 10.0, false, &[]), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(-0.1, 0.7, true, &[1.0, 2.0, 4.0]).len(), 3);
        assert_eq!(tick_label(3.0, true), "1000");
        assert_eq!(tick_label(6.0, true), "1M");
        assert_eq!(tick_label(0.25, false), "0.25");
        assert_eq!(tick_label(2f64.log10() + 4.0, true), "20k");
        assert_eq!(tick_label(-4.0, true), "0.0001");
        assert_eq!(tick_label(1.5, false), "1.5");
        assert_eq!(tick_label(0.0, false), "0");
    }
}
