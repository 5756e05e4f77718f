//! Line charts over categories (dates, months, …), one line per series, with gaps where a value
//! is missing.

use super::bar::Series;
use super::text::{esc, fmt_axis};
use super::{Frame, LEFT, PALETTE};
use std::fmt::Write;

/// Lines over categories (dates, months, …), one per series.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
    pub fmt: fn(f64) -> String,
}

impl LineChart {
    pub fn new(title: &str, x_label: &str, y_label: &str, categories: Vec<String>, series: Vec<Series>) -> LineChart {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            categories,
            series,
            fmt: fmt_axis,
        }
    }

    pub fn to_svg(&self) -> String {
        let mut svg = Frame::new(&self.title, &self.x_label, &self.y_label);
        if self.categories.is_empty() {
            svg.empty();
            return svg.finish();
        }
        let vals = self.series.iter().flat_map(|s| s.values.iter().flatten().copied());
        let (lo, hi) = vals.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let y = svg.y_axis(lo, hi, self.fmt, false);
        let n = self.categories.len();
        let band = svg.plot_w() / n as f64;
        let x_at = |i: usize| LEFT + band * (i as f64 + 0.5);
        for (si, s) in self.series.iter().enumerate() {
            let color = PALETTE[si % PALETTE.len()];
            let mut d = String::new();
            let mut pen_down = false;
            for (i, v) in s.values.iter().enumerate() {
                match v {
                    Some(v) => {
                        let _ = write!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x_at(i), y.at(*v));
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            let _ = write!(
                svg.body,
                r#"<path class="line" d="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                d.trim()
            );
            for (i, v) in s.values.iter().enumerate() {
                if let Some(v) = v {
                    let tip = format!("{} · {}: {}", self.categories[i], s.name, (self.fmt)(*v));
                    let _ = write!(
                        svg.body,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{}</title></circle>"#,
                        x_at(i),
                        y.at(*v),
                        esc(&tip)
                    );
                }
            }
        }
        for (i, cat) in self.categories.iter().enumerate() {
            svg.x_label_at(x_at(i), cat, n);
        }
        if self.series.len() > 1 {
            svg.legend(self.series.iter().enumerate().map(|(i, s)| (s.name.as_str(), PALETTE[i % PALETTE.len()])));
        }
        svg.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_draws_one_path_per_series_with_gaps() {
        let svg = LineChart::new(
            "Quarantined",
            "date",
            "rows",
            vec!["2025-06-01".into(), "2025-06-02".into(), "2025-06-03".into()],
            vec![
                Series::new("a", vec![Some(1.0), None, Some(3.0)]),
                Series::new("b'", vec![Some(2.0), Some(2.0), Some(2.0)]),
            ],
        )
        .to_svg();
        assert_eq!(svg.matches("<path class=\"line\"").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("M") && svg.contains("b&#39;"));
    }
}
