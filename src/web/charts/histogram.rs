//! Histograms of values in equal bins, outliers outside the bounds in red and the bounds drawn.

use super::text::{esc, fmt_axis};
use super::{Frame, LEFT, PALETTE, RED, TOP, nice_ticks};
use std::fmt::Write;

/// A histogram of values in `bins` equal bins; bins outside `[lower, upper]` (outliers) are red,
/// and the bounds are drawn as lines.
#[derive(Debug, Clone)]
pub struct Histogram {
    pub title: String,
    pub x_label: String,
    pub values: Vec<f64>,
    pub bins: usize,
    pub bounds: Option<(f64, f64)>,
    pub fmt: fn(f64) -> String,
}

impl Histogram {
    /// `(bin start, bin end, count)` of each bin.
    pub fn counts(&self) -> Vec<(f64, f64, u64)> {
        let vals: Vec<f64> = self.values.iter().copied().filter(|v| v.is_finite()).collect();
        if vals.is_empty() {
            return Vec::new();
        }
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let bins = self.bins.max(1);
        let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
        let mut counts = vec![0u64; bins];
        for v in vals {
            let i = (((v - lo) / width) as usize).min(bins - 1);
            counts[i] += 1;
        }
        counts.into_iter().enumerate().map(|(i, c)| (lo + width * i as f64, lo + width * (i + 1) as f64, c)).collect()
    }

    pub fn to_svg(&self) -> String {
        let mut svg = Frame::new(&self.title, &self.x_label, "rounds");
        let counts = self.counts();
        if counts.is_empty() {
            svg.empty();
            return svg.finish();
        }
        let max = counts.iter().map(|c| c.2).max().unwrap_or(0) as f64;
        let y = svg.y_axis(0.0, max, fmt_axis, false);
        let (lo, hi) = (counts[0].0, counts[counts.len() - 1].1);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let pw = svg.plot_w();
        let x_at = |v: f64| LEFT + (v - lo) / span * pw;
        for (a, b, c) in &counts {
            let outlier = self.bounds.is_some_and(|(l, u)| *b <= l || *a >= u);
            let color = if outlier { RED } else { PALETTE[0] };
            let tip = format!(
                "{} – {}: {} rounds{}",
                (self.fmt)(*a),
                (self.fmt)(*b),
                c,
                if outlier { " (outliers)" } else { "" }
            );
            let _ = write!(
                svg.body,
                r#"<rect class="lh-bar{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
                if outlier { " outlier" } else { "" },
                x_at(*a),
                y.at(*c as f64),
                (x_at(*b) - x_at(*a) - 1.0).max(1.0),
                (y.at(0.0) - y.at(*c as f64)).max(0.0),
                esc(&tip)
            );
        }
        for t in nice_ticks(lo, hi, 8).into_iter().filter(|t| *t >= lo && *t <= hi) {
            let _ = write!(
                svg.body,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
                x_at(t),
                TOP + svg.plot_h() + 16.0,
                esc(&(self.fmt)(t))
            );
        }
        if let Some((l, u)) = self.bounds {
            for (v, name) in [(l, "lower bound"), (u, "upper bound")] {
                if v >= lo && v <= hi {
                    let x = x_at(v);
                    let _ = write!(
                        svg.body,
                        r#"<line class="bound" x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{RED}" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" class="tick" fill="{RED}">{}</text>"#,
                        TOP,
                        TOP + svg.plot_h(),
                        x + 3.0,
                        TOP + 10.0,
                        esc(&format!("{name} {}", (self.fmt)(v)))
                    );
                }
            }
        }
        svg.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_values_and_marks_outliers() {
        let mut values: Vec<f64> = (0..100).map(|i| 100.0 + i as f64).collect();
        values.push(1000.0);
        let h = Histogram {
            title: "Durations".into(),
            x_label: "minutes".into(),
            values,
            bins: 10,
            bounds: Some((90.0, 300.0)),
            fmt: fmt_axis,
        };
        let counts = h.counts();
        assert_eq!(counts.len(), 10);
        assert_eq!(counts.iter().map(|c| c.2).sum::<u64>(), 101);
        assert_eq!(counts[9].2, 1);
        let svg = h.to_svg();
        assert!(svg.contains("class=\"lh-bar outlier\""), "{svg}");
        assert!(svg.contains("upper bound 300"));
    }
}
