//! Server-side SVG charts for the lakehouse pages: bar charts (single, grouped, stacked, with
//! reference lines), line charts, heatmaps with a colour legend and histograms with outlier bounds.
//! Each chart is a plain struct rendered to one `<svg>` string with a title and axis labels; every
//! piece of text in it is escaped here, so templates can include the result with `|safe`.
//! Also the number formats people read: thousands separators, percentages, signed pace `+1:05`.

use std::fmt::Write;

mod bar;
mod heatmap;
mod histogram;
mod line;
mod map;
mod text;

pub use bar::{BarChart, Layout, RefLine, Series};
pub use heatmap::{Heatmap, scale_color};
pub use histogram::Histogram;
pub use line::LineChart;
pub use map::{MapPoint, PointMap};
pub use text::{esc, fmt_axis, fmt_duration, fmt_int, fmt_num, fmt_pace, fmt_pct};

/// Colours of the series, in order (colour-blind-friendly Tableau 10).
pub const PALETTE: &[&str] =
    &["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
pub const RED: &str = "#d63b3b";
pub const GREEN: &str = "#2e9d4f";
pub const GREY: &str = "#9aa4b2";

const W: f64 = 760.0;
const H: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 84.0;

/// About `n` round tick values covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, lo + 1.0) };
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let mut ticks = Vec::new();
    let mut t = start;
    while ticks.len() < 50 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        if t >= hi - step * 1e-9 {
            break;
        }
        t += step;
    }
    ticks
}

/// About `n` tick values in seconds covering `[lo, hi]`, on whole minutes (or 5/10/15/30 s).
pub fn time_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 60.0, lo + 60.0) };
    let raw = (hi - lo) / n.max(1) as f64;
    const STEPS: &[f64] = &[5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0];
    let step = STEPS.iter().copied().find(|s| *s >= raw).unwrap_or_else(|| (raw / 3600.0).ceil() * 3600.0);
    let start = (lo / step).floor() * step;
    let mut ticks = Vec::new();
    let mut t = start;
    while ticks.len() < 50 {
        ticks.push(if t == 0.0 { 0.0 } else { t });
        if t >= hi {
            break;
        }
        t += step;
    }
    ticks
}

fn open_svg(w: f64, h: f64, title: &str) -> String {
    format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="{t}"><text x="{:.0}" y="20" class="chart-title">{t}</text>"#,
        LEFT,
        t = esc(title)
    )
}

/// The linear y scale of a plot.
struct YScale {
    lo: f64,
    hi: f64,
    h: f64,
}

impl YScale {
    fn at(&self, v: f64) -> f64 {
        let span = if self.hi > self.lo { self.hi - self.lo } else { 1.0 };
        TOP + self.h - (v - self.lo) / span * self.h
    }
}

/// The common frame of x/y charts: title, axes, axis labels.
struct Frame {
    head: String,
    body: String,
    x_label: String,
    y_label: String,
}

impl Frame {
    fn new(title: &str, x_label: &str, y_label: &str) -> Frame {
        Frame { head: open_svg(W, H, title), body: String::new(), x_label: x_label.into(), y_label: y_label.into() }
    }

    fn plot_w(&self) -> f64 {
        W - LEFT - RIGHT
    }

    fn plot_h(&self) -> f64 {
        H - TOP - BOTTOM
    }

    fn empty(&mut self) {
        let _ = write!(self.body, r#"<text x="{:.0}" y="{:.0}" class="empty">no data</text>"#, W / 2.0, H / 2.0);
    }

    /// Draws the y axis with grid lines for `[lo, hi]` and returns its scale.
    fn y_axis(&mut self, lo: f64, hi: f64, fmt: fn(f64) -> String, time: bool) -> YScale {
        let ticks = if time { time_ticks(lo, hi, 5) } else { nice_ticks(lo, hi, 5) };
        let lo = ticks.first().copied().unwrap_or(lo).min(lo);
        let hi = ticks.last().copied().unwrap_or(hi).max(hi);
        let y = YScale { lo, hi, h: self.plot_h() };
        for t in ticks {
            let yy = y.at(t);
            let _ = write!(
                self.body,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{}"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
                W - RIGHT,
                if t == 0.0 { "#9aa4b2" } else { "#e3e6ec" },
                LEFT - 6.0,
                yy + 4.0,
                esc(&fmt(t))
            );
        }
        y
    }

    fn x_label_at(&mut self, x: f64, text: &str, n: usize) {
        let y = TOP + self.plot_h() + 16.0;
        if n > 12 || text.chars().count() * 7 > ((self.plot_w() / n as f64) as usize).max(1) {
            // Rotated; long labels are shortened (the full text is the label's tooltip).
            let short: String = if text.chars().count() > 14 {
                text.chars().take(13).chain(std::iter::once('…')).collect()
            } else {
                text.to_string()
            };
            let _ = write!(
                self.body,
                r#"<text x="{x:.1}" y="{y:.1}" text-anchor="end" transform="rotate(-35 {x:.1} {y:.1})" class="tick"><title>{}</title>{}</text>"#,
                esc(text),
                esc(&short)
            );
        } else {
            let _ = write!(
                self.body,
                r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle" class="tick">{}</text>"#,
                esc(text)
            );
        }
    }

    fn ref_line(&mut self, y: f64, label: &str, color: &str) {
        let _ = write!(
            self.body,
            r#"<line class="ref" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="6 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick" fill="{color}" stroke="white" stroke-width="3" paint-order="stroke">{}</text>"#,
            W - RIGHT,
            W - RIGHT - 2.0,
            y - 4.0,
            esc(label)
        );
    }

    /// The series legend, left to right on the row under the title.
    fn legend<'a>(&mut self, items: impl Iterator<Item = (&'a str, &'a str)>) {
        let mut x = LEFT;
        let mut parts = Vec::new();
        for (name, color) in items {
            parts.push(format!(
                r#"<rect x="{x:.1}" y="26" width="10" height="10" fill="{color}"/><text x="{:.1}" y="35" class="tick">{}</text>"#,
                x + 14.0,
                esc(name)
            ));
            x += 24.0 + name.chars().count() as f64 * 6.0;
        }
        let _ = write!(self.body, r#"<g class="legend">{}</g>"#, parts.concat());
    }

    fn finish(self) -> String {
        let (ph, pw) = (self.plot_h(), self.plot_w());
        let mut out = self.head;
        let _ = write!(
            out,
            r#"<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}" stroke="{GREY}"/>"#,
            TOP + ph
        );
        out.push_str(&self.body);
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis-label">{}</text><text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})" class="axis-label">{}</text></svg>"#,
            LEFT + pw / 2.0,
            H - 6.0,
            esc(&self.x_label),
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 100.0, 5), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let t = nice_ticks(-35.0, 130.0, 5);
        assert!(t[0] <= -35.0 && *t.last().unwrap() >= 130.0, "{t:?}");
        let flat = nice_ticks(5.0, 5.0, 5);
        assert!(flat.len() >= 3 && flat.contains(&5.0), "{flat:?}");
        assert_eq!(time_ticks(0.0, 600.0, 5), vec![0.0, 120.0, 240.0, 360.0, 480.0, 600.0]);
        assert_eq!(time_ticks(-90.0, 200.0, 5), vec![-120.0, -60.0, 0.0, 60.0, 120.0, 180.0, 240.0]);
    }

    #[test]
    fn empty_charts_say_so() {
        assert!(BarChart::new("t", "x", "y", vec![], vec![]).to_svg().contains("no data"));
        assert!(LineChart::new("t", "x", "y", vec![], vec![]).to_svg().contains("no data"));
        let h =
            Histogram { title: "h".into(), x_label: "m".into(), values: vec![], bins: 10, bounds: None, fmt: fmt_axis };
        assert!(h.to_svg().contains("no data"));
    }
}
