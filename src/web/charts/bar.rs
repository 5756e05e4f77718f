//! Bar charts: single, grouped or stacked [`Series`], with reference lines ([`RefLine`]).

use super::text::{esc, fmt_axis};
use super::{Frame, LEFT, PALETTE};
use std::fmt::Write;

/// A horizontal reference line across a bar or line chart (average, threshold, …).
#[derive(Debug, Clone)]
pub struct RefLine {
    pub value: f64,
    pub label: String,
    pub color: &'static str,
}

/// One named series of values (one per category); `None` is a gap.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

impl Series {
    pub fn new(name: impl Into<String>, values: Vec<Option<f64>>) -> Series {
        Series { name: name.into(), values }
    }
}

/// How several series share a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Grouped,
    Stacked,
}

/// Bars per category: one series, grouped series or stacked series.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
    pub layout: Layout,
    pub lines: Vec<RefLine>,
    /// Colour of each bar of a single-series chart (e.g. bottleneck holes in red).
    pub bar_colors: Option<Vec<&'static str>>,
    /// Formats axis ticks and bar tooltips.
    pub fmt: fn(f64) -> String,
    /// Values are seconds: ticks on whole minutes.
    pub time: bool,
}

impl BarChart {
    pub fn new(title: &str, x_label: &str, y_label: &str, categories: Vec<String>, series: Vec<Series>) -> BarChart {
        BarChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            categories,
            series,
            layout: Layout::Grouped,
            lines: Vec::new(),
            bar_colors: None,
            fmt: fmt_axis,
            time: false,
        }
    }

    /// Values are seconds shown with `fmt` (e.g. [`fmt_pace`]); ticks fall on whole minutes.
    pub fn with_time_fmt(mut self, fmt: fn(f64) -> String) -> BarChart {
        self.fmt = fmt;
        self.time = true;
        self
    }

    pub fn stacked(mut self) -> BarChart {
        self.layout = Layout::Stacked;
        self
    }

    pub fn line(mut self, value: f64, label: impl Into<String>, color: &'static str) -> BarChart {
        self.lines.push(RefLine { value, label: label.into(), color });
        self
    }

    pub fn with_fmt(mut self, fmt: fn(f64) -> String) -> BarChart {
        self.fmt = fmt;
        self
    }

    pub fn with_colors(mut self, colors: Vec<&'static str>) -> BarChart {
        self.bar_colors = Some(colors);
        self
    }

    /// The value range the y axis must show.
    fn range(&self) -> (f64, f64) {
        let mut lo: f64 = 0.0;
        let mut hi: f64 = 0.0;
        for i in 0..self.categories.len() {
            let vals = self.series.iter().filter_map(|s| s.values.get(i).copied().flatten());
            if self.layout == Layout::Stacked {
                let (pos, neg) = vals.fold((0.0, 0.0), |(p, n), v| if v >= 0.0 { (p + v, n) } else { (p, n + v) });
                hi = hi.max(pos);
                lo = lo.min(neg);
            } else {
                for v in vals {
                    hi = hi.max(v);
                    lo = lo.min(v);
                }
            }
        }
        for l in &self.lines {
            hi = hi.max(l.value);
            lo = lo.min(l.value);
        }
        (lo, hi)
    }

    pub fn to_svg(&self) -> String {
        let mut svg = Frame::new(&self.title, &self.x_label, &self.y_label);
        if self.categories.is_empty() {
            svg.empty();
            return svg.finish();
        }
        let (lo, hi) = self.range();
        let y = svg.y_axis(lo, hi, self.fmt, self.time);
        let n = self.categories.len();
        let band = svg.plot_w() / n as f64;
        let k = self.series.len().max(1);
        let multi = self.series.len() > 1;
        for (i, cat) in self.categories.iter().enumerate() {
            let x0 = LEFT + band * i as f64;
            // Bars at most 90 px wide, centred in their band.
            let max_w = if self.layout == Layout::Stacked { 90.0 } else { 90.0 * k as f64 };
            let inner = (band * 0.8).min(max_w);
            let pad = (band - inner) / 2.0;
            let (mut up, mut down) = (0.0, 0.0);
            for (si, s) in self.series.iter().enumerate() {
                let Some(v) = s.values.get(i).copied().flatten() else { continue };
                let color = match (&self.bar_colors, multi) {
                    (Some(c), false) => c.get(i).copied().unwrap_or(PALETTE[0]),
                    _ => PALETTE[si % PALETTE.len()],
                };
                let (bx, bw, base) = match self.layout {
                    Layout::Grouped => (x0 + pad + inner / k as f64 * si as f64, inner / k as f64, 0.0),
                    Layout::Stacked => {
                        let base = if v >= 0.0 { up } else { down };
                        if v >= 0.0 {
                            up += v
                        } else {
                            down += v
                        }
                        (x0 + pad, inner, base)
                    }
                };
                let (y1, y2) = (y.at(base), y.at(base + v));
                let tip = if multi {
                    format!("{cat} · {}: {}", s.name, (self.fmt)(v))
                } else {
                    format!("{cat}: {}", (self.fmt)(v))
                };
                let _ = write!(
                    svg.body,
                    r#"<rect class="lh-bar" x="{bx:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
                    y1.min(y2),
                    (bw - 1.0).max(1.0),
                    (y1 - y2).abs().max(0.5),
                    esc(&tip)
                );
            }
            svg.x_label_at(x0 + band / 2.0, cat, n);
        }
        for l in &self.lines {
            svg.ref_line(y.at(l.value), &l.label, l.color);
        }
        if multi {
            svg.legend(self.series.iter().enumerate().map(|(i, s)| (s.name.as_str(), PALETTE[i % PALETTE.len()])));
        }
        svg.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::charts::{RED, fmt_pace};

    #[test]
    fn bar_chart_has_bars_labels_lines_and_escaped_text() {
        let chart = BarChart::new(
            "Rounds <by> course",
            "course",
            "rounds",
            vec!["a&b".into(), "<script>".into()],
            vec![Series::new("rounds", vec![Some(10.0), Some(25.0)])],
        )
        .line(20.0, "threshold \"1.15×\"", RED);
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<rect class=\"lh-bar\"").count(), 2);
        assert!(svg.contains("Rounds &lt;by&gt; course"));
        assert!(svg.contains("a&amp;b") && svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("threshold &quot;1.15×&quot;"));
        assert!(svg.contains("class=\"axis-label\">course<") && svg.contains(">rounds</text></svg>"));
        assert!(svg.contains("class=\"ref\""));
    }

    #[test]
    fn stacked_and_grouped_bars_and_legend() {
        let cats = vec!["d1".to_string(), "d2".to_string()];
        let series = vec![Series::new("x", vec![Some(1.0), Some(2.0)]), Series::new("y", vec![Some(3.0), None])];
        let stacked = BarChart::new("s", "day", "n", cats.clone(), series.clone()).stacked().to_svg();
        assert_eq!(stacked.matches("<rect class=\"lh-bar\"").count(), 3);
        assert!(stacked.contains("class=\"legend\"") && stacked.contains(">y</text>"));
        let grouped = BarChart::new("g", "day", "n", cats, series).to_svg();
        assert_eq!(grouped.matches("<rect class=\"lh-bar\"").count(), 3);
        // Stacked: the y axis reaches the sum (4), grouped only the max (3).
        assert!(stacked.contains(">4</text>"), "{stacked}");
    }

    #[test]
    fn negative_bars_and_pace_ticks() {
        let svg = BarChart::new(
            "pace",
            "hole",
            "pace",
            vec!["1".into(), "2".into()],
            vec![Series::new("p", vec![Some(-30.0), Some(65.0)])],
        )
        .with_fmt(fmt_pace)
        .to_svg();
        assert!(svg.contains("1: -0:30") && svg.contains("2: +1:05"), "{svg}");
    }
}
