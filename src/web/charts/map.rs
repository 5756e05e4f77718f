//! Point maps: points placed by latitude and longitude ([`PointMap`], [`MapPoint`]).

use super::text::esc;
use super::{LEFT, PALETTE, RIGHT, TOP, W, open_svg};
use std::fmt::Write;

/// One point of a [`PointMap`].
#[derive(Debug, Clone)]
pub struct MapPoint {
    pub lat: f64,
    pub lon: f64,
    /// Short text drawn beside the point (`7-3`: hole 7, section 3).
    pub label: String,
    /// Tooltip.
    pub tip: String,
    /// Colour group (index into [`PALETTE`]), e.g. the nine.
    pub group: usize,
    /// Relative size 0..=1 (e.g. fixes seen there).
    pub weight: f64,
}

/// Points at their coordinates, drawn to scale (longitude shrunk by the cosine of the mean
/// latitude, so a course looks as it does on a map), coloured by group, with a legend.
#[derive(Debug, Clone)]
pub struct PointMap {
    pub title: String,
    pub points: Vec<MapPoint>,
    /// Legend entries, by group index.
    pub groups: Vec<String>,
}

impl PointMap {
    pub fn to_svg(&self) -> String {
        let (w, h) = (W, 460.0);
        let mut out = open_svg(w, h, &self.title);
        let pts: Vec<&MapPoint> = self.points.iter().filter(|p| p.lat.is_finite() && p.lon.is_finite()).collect();
        if pts.is_empty() {
            let _ = write!(out, r#"<text x="{:.0}" y="{:.0}" class="empty">no data</text></svg>"#, w / 2.0, TOP + 30.0);
            return out;
        }
        let (mut lat0, mut lat1, mut lon0, mut lon1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in &pts {
            lat0 = lat0.min(p.lat);
            lat1 = lat1.max(p.lat);
            lon0 = lon0.min(p.lon);
            lon1 = lon1.max(p.lon);
        }
        let k = ((lat0 + lat1) / 2.0).to_radians().cos().abs().max(0.01);
        let (dx, dy) = (((lon1 - lon0) * k).max(1e-6), (lat1 - lat0).max(1e-6));
        let (pw, ph) = (w - LEFT - RIGHT - 40.0, h - TOP - 60.0);
        let scale = (pw / dx).min(ph / dy);
        let (ox, oy) = (LEFT + 20.0 + (pw - dx * scale) / 2.0, TOP + 10.0 + (ph - dy * scale) / 2.0);
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f6f8f5" stroke="#dde3da"/>"##,
            LEFT,
            TOP,
            w - LEFT - RIGHT,
            h - TOP - 40.0
        );
        for p in &pts {
            let x = ox + (p.lon - lon0) * k * scale;
            let y = oy + (lat1 - p.lat) * scale;
            let r = 3.0 + 5.0 * p.weight.clamp(0.0, 1.0);
            let color = PALETTE[p.group % PALETTE.len()];
            let _ = write!(
                out,
                r#"<circle class="map-point" cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="{color}" fill-opacity="0.8"><title>{}</title></circle><text x="{:.1}" y="{:.1}" class="tick map-label">{}</text>"#,
                esc(&p.tip),
                x + r + 1.0,
                y + 3.0,
                esc(&p.label)
            );
        }
        let ly = h - 16.0;
        let mut lx = LEFT;
        for (i, g) in self.groups.iter().enumerate() {
            let _ = write!(
                out,
                r#"<g class="legend"><circle cx="{:.1}" cy="{:.1}" r="5" fill="{}"/><text x="{:.1}" y="{:.1}" class="tick">{}</text></g>"#,
                lx + 5.0,
                ly - 4.0,
                PALETTE[i % PALETTE.len()],
                lx + 14.0,
                ly,
                esc(g)
            );
            lx += 24.0 + 7.0 * g.chars().count() as f64;
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{:.4}°, {:.4}° … {:.4}°, {:.4}°</text>"#,
            w - RIGHT,
            ly,
            lat0,
            lon0,
            lat1,
            lon1
        );
        out.push_str("</svg>");
        out
    }
}
