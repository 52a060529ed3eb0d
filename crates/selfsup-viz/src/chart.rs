//! Line charts: axes with "nice" ticks, grid, title, legend, anti-aliased lines.
//!
//! A [`Chart`] is plain data (series of `(x, y)` points and labels);
//! [`Chart::render`] draws it into an [`RgbImage`]. Non-finite `y` values
//! break a line; a point with no finite neighbour is drawn as a dot.

use image::{Rgb, RgbImage};

use crate::font::{self, GLYPH_HEIGHT, LINE_HEIGHT};

/// matplotlib's `tab10` colours, the default colour cycle.
pub const PALETTE: [Rgb<u8>; 10] = [
    Rgb([31, 119, 180]),
    Rgb([255, 127, 14]),
    Rgb([44, 160, 44]),
    Rgb([214, 39, 40]),
    Rgb([148, 103, 189]),
    Rgb([140, 86, 75]),
    Rgb([227, 119, 194]),
    Rgb([127, 127, 127]),
    Rgb([188, 189, 34]),
    Rgb([23, 190, 207]),
];

const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const FRAME: Rgb<u8> = Rgb([110, 110, 110]);
const GRID: Rgb<u8> = Rgb([228, 228, 228]);
const TICK_LEN: i64 = 5;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points in drawing order; a non-finite `y` breaks the line.
    pub points: Vec<(f64, f64)>,
    /// Line colour.
    pub color: Rgb<u8>,
    /// Line width in pixels.
    pub width: f32,
    /// Whether the series gets a legend entry.
    pub in_legend: bool,
}

impl Series {
    /// A 2-pixel line with a legend entry.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, color: Rgb<u8>) -> Self {
        Self { label: label.into(), points, color, width: 2.0, in_legend: true }
    }
}

/// The y axis' scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// Linear.
    #[default]
    Linear,
    /// Base-10 logarithmic; values `<= 0` cannot be drawn and are left out.
    Log,
}

/// A line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Drawn at the top, twice the text size.
    pub title: String,
    /// Below the x axis.
    pub x_label: String,
    /// Left of the y axis, reading upwards.
    pub y_label: String,
    /// Drawn in order (later on top).
    pub series: Vec<Series>,
    /// The y axis' scale.
    pub y_scale: Scale,
    /// Only whole-number x ticks (iterations, epochs).
    pub integer_x: bool,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

impl Default for Chart {
    fn default() -> Self {
        Self {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
            y_scale: Scale::Linear,
            integer_x: false,
            width: 800,
            height: 450,
        }
    }
}

/// Tick positions on a linear axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// The distance between ticks: 1, 2 or 5 times a power of ten.
    pub step: f64,
    /// The ticks in `[lo, hi]`, increasing, each a whole multiple of `step`.
    pub values: Vec<f64>,
}

/// Ticks for `[lo, hi]`: the smallest step of the form 1, 2 or 5 × 10ᵏ that
/// puts at most `max_ticks` ticks in the range (Heckbert's "nice numbers").
/// A degenerate or non-finite range gives no ticks.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> Ticks {
    nice_ticks_min_step(lo, hi, max_ticks, 0.0)
}

fn nice_ticks_min_step(lo: f64, hi: f64, max_ticks: usize, min_step: f64) -> Ticks {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) || max_ticks == 0 {
        return Ticks { step: f64::NAN, values: Vec::new() };
    }
    // Index range of the ticks k·step in [lo, hi], forgiving rounding at the ends.
    let range = |step: f64| ((lo / step - 1e-9).ceil() as i64, (hi / step + 1e-9).floor() as i64);
    let mut exp = (span / max_ticks as f64).log10().floor() as i32 - 1;
    loop {
        for m in [1i64, 2, 5] {
            let step = format!("{m}e{exp}").parse::<f64>().unwrap_or(f64::NAN);
            let (first, last) = range(step);
            if step >= min_step && last - first < max_ticks as i64 {
                // k·m·10^exp parsed from its decimal form: 3 × 0.1 is 0.3, not 0.30000000000000004.
                let values = (first..=last).map(|k| format!("{}e{exp}", k * m).parse().unwrap_or(k as f64 * step)).collect();
                return Ticks { step, values };
            }
        }
        exp += 1;
    }
}

/// Ticks for a logarithmic axis over `[lo, hi]` (`0 < lo < hi`): powers of
/// ten, or 1-2-5 or 1…9 × 10ᵏ when the range spans too few decades, or linear
/// nice ticks when it is narrower still. Powers of ten are thinned to at most
/// `max_ticks`.
pub fn log_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) || max_ticks == 0 {
        return Vec::new();
    }
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let within = |mantissas: &[f64]| -> Vec<f64> {
        (d0..=d1)
            .flat_map(|e| mantissas.iter().map(move |m| format!("{m}e{e}").parse::<f64>().unwrap_or(f64::NAN)))
            .filter(|v| *v >= lo * (1.0 - 1e-12) && *v <= hi * (1.0 + 1e-12))
            .collect()
    };
    let decades = within(&[1.0]);
    if decades.len() > max_ticks {
        let every = decades.len().div_ceil(max_ticks);
        return decades.into_iter().step_by(every).collect();
    }
    // The sparsest mantissa set giving three ticks; two will do if a denser one has too many.
    let mut best = None;
    for mantissas in [&[1.0][..], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]] {
        let ticks = within(mantissas);
        if ticks.len() > max_ticks {
            break;
        }
        if ticks.len() >= 3 {
            return ticks;
        }
        if ticks.len() == 2 {
            best = Some(ticks);
        }
    }
    best.unwrap_or_else(|| nice_ticks(lo, hi, max_ticks.min(5)).values)
}

/// Labels for evenly spaced ticks: the fewest decimals that tell the values
/// apart exactly, in scientific notation (`2e-5`) for very large or small
/// magnitudes; `0` is always `"0"`.
pub fn format_ticks(values: &[f64]) -> Vec<String> {
    let max_abs = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let sci = max_abs >= 1e5 || (max_abs > 0.0 && max_abs < 1e-3);
    let gap = values.windows(2).map(|w| (w[1] - w[0]).abs()).fold(f64::INFINITY, f64::min);
    let tol = if gap.is_finite() && gap > 0.0 { gap * 1e-6 } else { max_abs * 1e-6 };
    (0..=12)
        .map(|d| values.iter().map(|&v| format_number(v, d, sci)).collect::<Vec<_>>())
        .find(|labels| labels.iter().zip(values).all(|(s, v)| s.parse::<f64>().is_ok_and(|p| (p - v).abs() <= tol)))
        .unwrap_or_else(|| values.iter().map(|&v| format_number(v, 12, sci)).collect())
}

/// The shortest label for one value (relative precision 10⁻⁶), in
/// scientific notation outside `[1e-3, 1e5)`.
pub fn format_value(v: f64) -> String {
    let sci = v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3);
    (0..=12)
        .map(|d| format_number(v, d, sci))
        .find(|s| s.parse::<f64>().is_ok_and(|p| (p - v).abs() <= v.abs() * 1e-6))
        .unwrap_or_else(|| format!("{v}"))
}

fn format_number(v: f64, decimals: usize, sci: bool) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() { "0".to_string() } else { format!("{v}") };
    }
    let s = if sci { format!("{v:.decimals$e}") } else { format!("{v:.decimals$}") };
    // "-0.00" for a value that rounds to zero reads as zero.
    if s.starts_with('-') && s[1..].parse::<f64>().is_ok_and(|p| p == 0.0) {
        s[1..].to_string()
    } else {
        s
    }
}

/// An axis-aligned pixel rectangle, `x0..x1` × `y0..y1` (ends exclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

impl Rect {
    fn of(img: &RgbImage) -> Self {
        Rect { x0: 0, y0: 0, x1: i64::from(img.width()), y1: i64::from(img.height()) }
    }
}

/// Blends `color` over pixel `(x, y)` with opacity `alpha` (0..=1); outside
/// the image nothing happens.
pub fn blend(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>, alpha: f32) {
    if x < 0 || y < 0 || x >= i64::from(img.width()) || y >= i64::from(img.height()) {
        return;
    }
    let a = alpha.clamp(0.0, 1.0);
    let p = img.get_pixel_mut(x as u32, y as u32);
    for (dst, src) in p.0.iter_mut().zip(color.0) {
        *dst = (f32::from(*dst) * (1.0 - a) + f32::from(src) * a).round() as u8;
    }
}

/// Draws an anti-aliased line of `width` pixels with round caps from `p0` to
/// `p1`. Coordinates are continuous: pixel `(i, j)` covers `[i, i+1) × [j, j+1)`,
/// so a line through `y = j + 0.5` covers row `j` fully at width 1.
pub fn draw_line(img: &mut RgbImage, p0: (f64, f64), p1: (f64, f64), color: Rgb<u8>, width: f32) {
    let clip = Rect::of(img);
    draw_line_clipped(img, p0, p1, color, width, clip);
}

fn draw_line_clipped(img: &mut RgbImage, p0: (f64, f64), p1: (f64, f64), color: Rgb<u8>, width: f32, clip: Rect) {
    let r = f64::from(width.max(0.0)) / 2.0;
    let reach = r + 1.0;
    let xs = ((p0.0.min(p1.0) - reach).floor() as i64).max(clip.x0);
    let xe = ((p0.0.max(p1.0) + reach).ceil() as i64).min(clip.x1);
    let ys = ((p0.1.min(p1.1) - reach).floor() as i64).max(clip.y0);
    let ye = ((p0.1.max(p1.1) + reach).ceil() as i64).min(clip.y1);
    let (dx, dy) = (p1.0 - p0.0, p1.1 - p0.1);
    let len2 = dx * dx + dy * dy;
    for y in ys..ye {
        for x in xs..xe {
            let (cx, cy) = (x as f64 + 0.5, y as f64 + 0.5);
            let t = if len2 > 0.0 { (((cx - p0.0) * dx + (cy - p0.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
            let d = ((cx - p0.0 - t * dx).powi(2) + (cy - p0.1 - t * dy).powi(2)).sqrt();
            let coverage = (r + 0.5 - d).clamp(0.0, 1.0);
            if coverage > 0.0 {
                blend(img, x, y, color, coverage as f32);
            }
        }
    }
}

fn fill_rect(img: &mut RgbImage, r: Rect, color: Rgb<u8>) {
    let c = Rect::of(img);
    for y in r.y0.max(c.y0)..r.y1.min(c.y1) {
        for x in r.x0.max(c.x0)..r.x1.min(c.x1) {
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

/// The drawable y range of a chart, in axis units (log10 of the value on a log axis).
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl Chart {
    fn finite_y(&self) -> impl Iterator<Item = f64> + '_ {
        let log = self.y_scale == Scale::Log;
        self.series.iter().flat_map(|s| s.points.iter()).map(|p| p.1).filter(move |y| y.is_finite() && (!log || *y > 0.0))
    }

    fn y_axis(&self, max_ticks: usize) -> Axis {
        let (mut lo, mut hi) = self.finite_y().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
        if lo > hi {
            (lo, hi) = if self.y_scale == Scale::Log { (0.1, 10.0) } else { (0.0, 1.0) };
        }
        match self.y_scale {
            Scale::Linear => {
                let pad = if hi > lo {
                    (hi - lo) * 0.05
                } else if lo != 0.0 {
                    lo.abs() * 0.1
                } else {
                    1.0
                };
                let (lo, hi) = (lo - pad, hi + pad);
                let ticks = nice_ticks(lo, hi, max_ticks).values;
                let labels = format_ticks(&ticks);
                Axis { lo, hi, ticks, labels }
            }
            Scale::Log => {
                let (l, h) = (lo.log10(), hi.log10());
                let pad = if h > l { (h - l) * 0.05 } else { 0.1 };
                let (l, h) = (l - pad, h + pad);
                let values = log_ticks(10f64.powf(l), 10f64.powf(h), max_ticks);
                let labels = values.iter().map(|&v| format_value(v)).collect();
                Axis { lo: l, hi: h, ticks: values.iter().map(|v| v.log10()).collect(), labels }
            }
        }
    }

    fn x_range(&self) -> (f64, f64) {
        let (lo, hi) = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .map(|p| p.0)
            .filter(|x| x.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        if lo > hi {
            (0.0, 1.0)
        } else if lo == hi {
            (lo - 1.0, hi + 1.0)
        } else {
            (lo, hi)
        }
    }

    /// Draws the chart.
    pub fn render(&self) -> RgbImage {
        let (w, h) = (i64::from(self.width.max(64)), i64::from(self.height.max(64)));
        let mut img = RgbImage::from_pixel(w as u32, h as u32, BACKGROUND);
        let line_h = i64::from(LINE_HEIGHT);

        // Title, then the legend rows under it.
        let mut top = 8;
        if !self.title.is_empty() {
            let tw = i64::from(font::text_width(&self.title, 2));
            font::draw_text(&mut img, (w - tw) / 2, top, &self.title, INK, 2);
            top += 2 * line_h + 4;
        }
        top = self.draw_legend(&mut img, top, w) + 6;

        // Margins from the labels' sizes.
        let y_axis = self.y_axis(((h - top) / 45).clamp(2, 10) as usize);
        let y_label_w = y_axis.labels.iter().map(|s| i64::from(font::text_width(s, 1))).max().unwrap_or(0);
        let left = 8 + if self.y_label.is_empty() { 0 } else { i64::from(GLYPH_HEIGHT) + 8 } + y_label_w + 4 + TICK_LEN;
        let bottom = h - (TICK_LEN + 4 + line_h + if self.x_label.is_empty() { 0 } else { line_h + 4 } + 6);
        let right = w - 24;
        if right - left < 16 || bottom - top < 16 {
            return img; // too small to hold a plot; the caller asked for it
        }
        let plot = Rect { x0: left, y0: top, x1: right, y1: bottom };
        // Data x spans the plot less a small inset, so end points clear the frame.
        const INSET: f64 = 4.0;
        let (pw, ph) = ((plot.x1 - plot.x0) as f64 - 2.0 * INSET, (plot.y1 - plot.y0 - 1) as f64);

        let (x_lo, x_hi) = self.x_range();
        let x_label_w = i64::from(font::text_width(&format_value(x_hi.abs().max(x_lo.abs())), 1)) + 24;
        let x_max_ticks = ((plot.x1 - plot.x0) / x_label_w.max(40)).clamp(2, 12) as usize;
        let x_ticks = nice_ticks_min_step(x_lo, x_hi, x_max_ticks, if self.integer_x { 1.0 } else { 0.0 }).values;
        let x_labels = format_ticks(&x_ticks);

        let to_px = |x: f64| plot.x0 as f64 + INSET + (x - x_lo) / (x_hi - x_lo) * pw;
        let to_py = |y: f64| plot.y1 as f64 - 0.5 - (y - y_axis.lo) / (y_axis.hi - y_axis.lo) * ph;

        // Grid, ticks and tick labels.
        for (t, label) in x_ticks.iter().zip(&x_labels) {
            let px = to_px(*t).floor() as i64;
            fill_rect(&mut img, Rect { x0: px, y0: plot.y0, x1: px + 1, y1: plot.y1 }, GRID);
            fill_rect(&mut img, Rect { x0: px, y0: plot.y1, x1: px + 1, y1: plot.y1 + TICK_LEN }, FRAME);
            let lw = i64::from(font::text_width(label, 1));
            font::draw_text(&mut img, px - lw / 2, plot.y1 + TICK_LEN + 3, label, INK, 1);
        }
        for (t, label) in y_axis.ticks.iter().zip(&y_axis.labels) {
            let py = to_py(*t).floor() as i64;
            fill_rect(&mut img, Rect { x0: plot.x0, y0: py, x1: plot.x1, y1: py + 1 }, GRID);
            fill_rect(&mut img, Rect { x0: plot.x0 - TICK_LEN, y0: py, x1: plot.x0, y1: py + 1 }, FRAME);
            let lw = i64::from(font::text_width(label, 1));
            font::draw_text(&mut img, plot.x0 - TICK_LEN - 4 - lw, py - 3, label, INK, 1);
        }
        // Axis labels.
        if !self.x_label.is_empty() {
            let lw = i64::from(font::text_width(&self.x_label, 1));
            font::draw_text(&mut img, (plot.x0 + plot.x1 - lw) / 2, plot.y1 + TICK_LEN + 4 + line_h + 2, &self.x_label, INK, 1);
        }
        if !self.y_label.is_empty() {
            let lh = i64::from(font::text_width(&self.y_label, 1));
            font::draw_text_vertical(&mut img, 8, (plot.y0 + plot.y1 - lh) / 2, &self.y_label, INK, 1);
        }

        // Data, clipped to the plot area.
        let inner = Rect { x0: plot.x0 + 1, y0: plot.y0 + 1, x1: plot.x1 - 1, y1: plot.y1 - 1 };
        let log = self.y_scale == Scale::Log;
        for s in &self.series {
            let pts: Vec<Option<(f64, f64)>> = s
                .points
                .iter()
                .map(|&(x, y)| {
                    let y = if log {
                        if y > 0.0 {
                            y.log10()
                        } else {
                            f64::NAN
                        }
                    } else {
                        y
                    };
                    (x.is_finite() && y.is_finite()).then(|| (to_px(x), to_py(y)))
                })
                .collect();
            for (i, p) in pts.iter().enumerate() {
                let Some(p) = *p else { continue };
                match pts.get(i + 1).copied().flatten() {
                    Some(q) => draw_line_clipped(&mut img, p, q, s.color, s.width, inner),
                    None if i == 0 || pts[i - 1].is_none() => draw_line_clipped(&mut img, p, p, s.color, s.width * 2.0 + 1.0, inner),
                    None => {}
                }
            }
        }

        // Frame last, over everything.
        for r in [
            Rect { x0: plot.x0, y0: plot.y0, x1: plot.x1, y1: plot.y0 + 1 },
            Rect { x0: plot.x0, y0: plot.y1 - 1, x1: plot.x1, y1: plot.y1 },
            Rect { x0: plot.x0, y0: plot.y0, x1: plot.x0 + 1, y1: plot.y1 },
            Rect { x0: plot.x1 - 1, y0: plot.y0, x1: plot.x1, y1: plot.y1 },
        ] {
            fill_rect(&mut img, r, FRAME);
        }
        img
    }

    /// Draws the legend entries centred in rows from `top`; returns the y below them.
    fn draw_legend(&self, img: &mut RgbImage, top: i64, w: i64) -> i64 {
        const SWATCH: i64 = 20;
        let entries: Vec<&Series> = self.series.iter().filter(|s| s.in_legend).collect();
        let entry_w = |s: &Series| SWATCH + 5 + i64::from(font::text_width(&s.label, 1)) + 16;
        let mut rows: Vec<Vec<&Series>> = Vec::new();
        let mut row_w = 0;
        for s in entries {
            if rows.is_empty() || row_w + entry_w(s) > w - 16 {
                rows.push(Vec::new());
                row_w = 0;
            }
            row_w += entry_w(s);
            if let Some(row) = rows.last_mut() {
                row.push(s);
            }
        }
        let line_h = i64::from(LINE_HEIGHT) + 4;
        for (r, row) in rows.iter().enumerate() {
            let total: i64 = row.iter().map(|s| entry_w(s)).sum::<i64>() - 16;
            let mut x = (w - total) / 2;
            let y = top + r as i64 * line_h;
            for s in row {
                let mid = y as f64 + 3.5;
                draw_line(img, (x as f64, mid), ((x + SWATCH) as f64, mid), s.color, s.width.max(2.0));
                font::draw_text(img, x + SWATCH + 5, y, &s.label, INK, 1);
                x += entry_w(s);
            }
        }
        top + rows.len() as i64 * line_h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_are_nice() {
        assert_eq!(nice_ticks(0.0, 1.0, 6), Ticks { step: 0.2, values: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0] });
        assert_eq!(nice_ticks(3.7, 97.2, 6).values, vec![20.0, 40.0, 60.0, 80.0]);
        assert_eq!(nice_ticks(-0.013, 0.027, 5).values, vec![-0.01, 0.0, 0.01, 0.02]);
        assert_eq!(nice_ticks(0.0, 1.5e-3, 4).values, vec![0.0, 5e-4, 1e-3, 1.5e-3]);
        assert!(nice_ticks(1.0, 1.0, 5).values.is_empty());
        assert!(nice_ticks(0.0, f64::NAN, 5).values.is_empty());
        // Properties over many ranges.
        let mut lo = -3.3e-4;
        for i in 0..200 {
            let hi = lo + (i as f64 * 0.37).exp() * 1e-5;
            for max in [2, 5, 8] {
                let t = nice_ticks(lo, hi, max);
                let mantissa = t.step / 10f64.powf(t.step.log10().floor());
                assert!([1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9), "step {} for [{lo}, {hi}]", t.step);
                let least = if max >= 5 { 2 } else { 1 };
                assert!((least..=max).contains(&t.values.len()), "{} ticks for [{lo}, {hi}] max {max}", t.values.len());
                for v in &t.values {
                    assert!(*v >= lo - 1e-12 && *v <= hi + 1e-12);
                    let k = v / t.step;
                    assert!((k - k.round()).abs() < 1e-6, "{v} is not a multiple of {}", t.step);
                }
                // The next smaller nice step would exceed max_ticks.
                let smaller = if (mantissa - 5.0).abs() < 1e-9 { t.step * 0.4 } else { t.step / 2.0 };
                let n = ((hi / smaller + 1e-9).floor() - (lo / smaller - 1e-9).ceil() + 1.0) as usize;
                assert!(n > max, "a finer step {smaller} fits {n} ticks in [{lo}, {hi}]");
            }
            lo *= -1.3;
        }
    }

    #[test]
    fn integer_axes_never_get_fractional_ticks() {
        assert_eq!(nice_ticks_min_step(9.0, 11.0, 8, 1.0).values, vec![9.0, 10.0, 11.0]);
        assert_eq!(nice_ticks(9.0, 11.0, 8).step, 0.5);
    }

    #[test]
    fn log_ticks_choose_decades_then_finer() {
        assert_eq!(log_ticks(0.05, 2000.0, 8), vec![0.1, 1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(1e-8, 1.0, 4), vec![1e-8, 1e-5, 1e-2]);
        assert_eq!(log_ticks(0.3, 6.0, 8), vec![0.5, 1.0, 2.0, 5.0]);
        assert_eq!(log_ticks(1.1, 1.9, 6), vec![1.2, 1.4, 1.6, 1.8]);
        assert!(log_ticks(0.0, 1.0, 5).is_empty());
    }

    #[test]
    fn tick_labels_are_short_and_exact() {
        assert_eq!(format_ticks(&[0.0, 0.2, 0.4, 0.6000000000000001]), ["0", "0.2", "0.4", "0.6"]);
        assert_eq!(format_ticks(&[0.0, 5.0, 10.0]), ["0", "5", "10"]);
        assert_eq!(format_ticks(&[0.0, 2e-4, 4e-4]), ["0", "2e-4", "4e-4"]);
        assert_eq!(format_ticks(&[0.0, 5e-4, 1e-3, 1.5e-3]), ["0", "0.0005", "0.0010", "0.0015"]);
        assert_eq!(format_ticks(&[0.0, 2e-5, 4e-5]), ["0", "2e-5", "4e-5"]);
        assert_eq!(format_ticks(&[1.5e-5, 2.5e-5]), ["1.5e-5", "2.5e-5"]);
        assert_eq!(format_ticks(&[-0.01, 0.0, 0.01]), ["-0.01", "0", "0.01"]);
        assert_eq!(format_ticks(&[100000.0, 200000.0]), ["1e5", "2e5"]);
        assert_eq!(format_value(0.001), "0.001");
        assert_eq!(format_value(1e-4), "1e-4");
        assert_eq!(format_value(20.0), "20");
    }

    #[test]
    fn a_horizontal_line_covers_its_row_only() {
        let mut img = RgbImage::from_pixel(60, 40, BACKGROUND);
        let red = Rgb([255, 0, 0]);
        draw_line(&mut img, (10.5, 20.5), (50.5, 20.5), red, 1.0);
        for x in 10..=50 {
            assert_eq!(*img.get_pixel(x, 20), red, "x = {x}");
            assert_eq!(*img.get_pixel(x, 19), BACKGROUND);
            assert_eq!(*img.get_pixel(x, 21), BACKGROUND);
        }
        assert_eq!(*img.get_pixel(8, 20), BACKGROUND);
        assert_eq!(*img.get_pixel(53, 20), BACKGROUND);
    }

    #[test]
    fn a_diagonal_line_passes_through_the_expected_pixels() {
        let mut img = RgbImage::from_pixel(40, 40, BACKGROUND);
        let blue = Rgb([0, 0, 255]);
        draw_line(&mut img, (5.5, 5.5), (30.5, 30.5), blue, 1.0);
        for i in 5..=30 {
            assert_eq!(*img.get_pixel(i, i), blue, "on the diagonal at {i}");
            // Two pixels off the diagonal stays untouched.
            assert_eq!(*img.get_pixel(i + 2, i), BACKGROUND);
        }
        // Neighbours are partly covered: anti-aliasing, not aliasing.
        let side = img.get_pixel(11, 10);
        assert!(side.0[0] < 255 && side.0[0] > 0, "{side:?}");
        assert_eq!(*img.get_pixel(35, 35), BACKGROUND, "the line stops at its end");
    }

    fn chart(points: Vec<(f64, f64)>, scale: Scale) -> Chart {
        Chart {
            title: "loss".into(),
            x_label: "iteration".into(),
            y_label: "loss".into(),
            series: vec![Series::new("loss", points, PALETTE[0])],
            y_scale: scale,
            integer_x: true,
            width: 400,
            height: 300,
        }
    }

    fn count(img: &RgbImage, color: Rgb<u8>) -> usize {
        img.pixels().filter(|p| **p == color).count()
    }

    #[test]
    fn render_draws_data_labels_and_gaps() {
        let pts: Vec<(f64, f64)> = (1..=50).map(|i| (i as f64 * 10.0, 1.0 / i as f64)).collect();
        let img = chart(pts.clone(), Scale::Linear).render();
        assert_eq!(img.dimensions(), (400, 300));
        assert!(count(&img, PALETTE[0]) > 200, "the curve is drawn");
        assert!(count(&img, INK) > 300, "title, labels and tick labels are drawn");

        // A NaN in the middle leaves a gap: the columns between its neighbours carry no curve.
        let mut gappy = pts;
        for p in &mut gappy[20..30] {
            p.1 = f64::NAN;
        }
        let img2 = chart(gappy, Scale::Linear).render();
        // Curve pixels, anti-aliased ones included: bluish, unlike the greys of the axes.
        let curve_cols = |img: &RgbImage| -> Vec<u32> {
            let bluish = |p: &Rgb<u8>| i32::from(p.0[2]) - i32::from(p.0[0]) > 40;
            (0..img.width()).filter(|&x| (0..img.height()).any(|y| bluish(img.get_pixel(x, y)))).collect()
        };
        let (full, gap) = (curve_cols(&img), curve_cols(&img2));
        assert!(gap.len() + 40 < full.len(), "{} columns with a gap vs {} without", gap.len(), full.len());
    }

    #[test]
    fn isolated_points_become_dots_and_log_scale_drops_non_positive_values() {
        let pts = vec![(1.0, 1.0), (2.0, f64::NAN), (3.0, 2.0), (4.0, f64::NAN), (5.0, 3.0)];
        // Legend swatch only, for the baseline.
        let empty = count(&chart(Vec::new(), Scale::Linear).render(), PALETTE[0]);
        let img = chart(pts, Scale::Linear).render();
        assert!(count(&img, PALETTE[0]) >= empty + 3 * 5, "three dots");
        let img = chart(vec![(1.0, -1.0), (2.0, 0.0), (3.0, 10.0), (4.0, 1.0)], Scale::Log).render();
        assert!(count(&img, PALETTE[0]) > empty + 20);
        // An empty chart still renders axes.
        let img = chart(Vec::new(), Scale::Log).render();
        assert_eq!(count(&img, PALETTE[0]), empty);
    }
}
