//! Heatmaps: a grid of cells coloured red → amber → green ([`scale_color`]) with a colour legend.

use super::text::esc;
use super::{RIGHT, TOP, W, open_svg};
use std::fmt::Write;

/// A grid of rows × columns coloured red → amber → green from `min` to `max` (or reversed),
/// with the value in each cell and a colour legend.
#[derive(Debug, Clone)]
pub struct Heatmap {
    pub title: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// `values[row][col]`.
    pub values: Vec<Vec<Option<f64>>>,
    pub min: f64,
    pub max: f64,
    /// Whether high values are bad (red).
    pub high_is_bad: bool,
    pub fmt: fn(f64) -> String,
}

/// The colour of `t` in 0..=1 on a red → amber → green scale.
pub fn scale_color(t: f64) -> String {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let (r0, g0, b0, r1, g1, b1, u) = if t < 0.5 {
        (214.0, 59.0, 59.0, 240.0, 162.0, 2.0, t * 2.0)
    } else {
        (240.0, 162.0, 2.0, 46.0, 157.0, 79.0, (t - 0.5) * 2.0)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * u).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(r0, r1), mix(g0, g1), mix(b0, b1))
}

impl Heatmap {
    pub fn to_svg(&self) -> String {
        let label_w = 130.0;
        let cell_w = ((W - label_w - RIGHT) / self.cols.len().max(1) as f64).min(80.0);
        let cell_h = 26.0;
        let head_h = 90.0;
        let height = TOP + head_h + cell_h * self.rows.len() as f64 + 56.0;
        let mut out = open_svg(W, height, &self.title);
        if self.rows.is_empty() || self.cols.is_empty() {
            let _ = write!(out, r#"<text x="{:.0}" y="{:.0}" class="empty">no data</text></svg>"#, W / 2.0, TOP + 30.0);
            return out;
        }
        for (c, col) in self.cols.iter().enumerate() {
            let x = label_w + cell_w * (c as f64 + 0.5);
            let _ = write!(
                out,
                r#"<text x="{x:.1}" y="{:.1}" transform="rotate(-45 {x:.1} {:.1})" class="tick">{}</text>"#,
                TOP + head_h - 6.0,
                TOP + head_h - 6.0,
                esc(col)
            );
        }
        let span = if self.max > self.min { self.max - self.min } else { 1.0 };
        for (r, row) in self.rows.iter().enumerate() {
            let y = TOP + head_h + cell_h * r as f64;
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
                label_w - 6.0,
                y + cell_h / 2.0 + 4.0,
                esc(row)
            );
            for c in 0..self.cols.len() {
                let x = label_w + cell_w * c as f64;
                let v = self.values.get(r).and_then(|vs| vs.get(c)).copied().flatten();
                let (fill, text) = match v {
                    Some(v) => {
                        let t = (v - self.min) / span;
                        (scale_color(if self.high_is_bad { 1.0 - t } else { t }), (self.fmt)(v))
                    }
                    None => ("#eef0f3".to_string(), "—".to_string()),
                };
                let tip = format!("{row} · {}: {text}", self.cols[c]);
                let _ = write!(
                    out,
                    r#"<rect class="lh-cell" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}" stroke="white"><title>{}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" class="cell-label">{}</text>"#,
                    cell_w,
                    cell_h,
                    esc(&tip),
                    x + cell_w / 2.0,
                    y + cell_h / 2.0 + 4.0,
                    esc(&text)
                );
            }
        }
        // Legend: a gradient bar from min to max.
        let ly = TOP + head_h + cell_h * self.rows.len() as f64 + 18.0;
        let (lx, lw) = (label_w, 240.0);
        let (left, right) = if self.high_is_bad { (1.0, 0.0) } else { (0.0, 1.0) };
        // One gradient id per direction: two heatmaps on a page must not share a reversed legend.
        let id = if self.high_is_bad { "hm-legend-bad" } else { "hm-legend" };
        let _ = write!(
            out,
            r#"<defs><linearGradient id="{id}" x1="0" x2="1" y1="0" y2="0"><stop offset="0" stop-color="{}"/><stop offset="0.5" stop-color="{}"/><stop offset="1" stop-color="{}"/></linearGradient></defs><g class="legend"><rect x="{lx:.1}" y="{ly:.1}" width="{lw:.1}" height="10" fill="url(#{id})"/><text x="{lx:.1}" y="{:.1}" class="tick">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text></g>"#,
            scale_color(left),
            scale_color(0.5),
            scale_color(right),
            ly + 24.0,
            esc(&(self.fmt)(self.min)),
            lx + lw,
            ly + 24.0,
            esc(&(self.fmt)(self.max))
        );
        out.push_str("</svg>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::charts::fmt_pct;

    #[test]
    fn heatmap_colours_cells_and_has_a_legend() {
        let hm = Heatmap {
            title: "Completeness".into(),
            rows: vec!["c1".into(), "<c2>".into()],
            cols: vec!["pace".into(), "battery".into()],
            values: vec![vec![Some(100.0), Some(0.0)], vec![None, Some(50.0)]],
            min: 0.0,
            max: 100.0,
            high_is_bad: false,
            fmt: |v| fmt_pct(v),
        };
        let svg = hm.to_svg();
        assert_eq!(svg.matches("<rect class=\"lh-cell\"").count(), 4);
        assert!(svg.contains(&format!("fill=\"{}\"", scale_color(1.0))));
        assert!(svg.contains(&format!("fill=\"{}\"", scale_color(0.0))));
        assert!(svg.contains("&lt;c2&gt;") && svg.contains("linearGradient") && svg.contains("100.0 %"));
        assert_eq!(scale_color(0.0), "#d63b3b");
        assert_eq!(scale_color(1.0), "#2e9d4f");
    }
}
