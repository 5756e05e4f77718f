//! Server-side SVG charts for the lakehouse pages: bar charts (single, grouped, stacked, with
//! reference lines), line charts, heatmaps with a colour legend and histograms with outlier bounds.
//! Each chart is a plain struct rendered to one `<svg>` string with a title and axis labels; every
//! piece of text in it is escaped here, so templates can include the result with `|safe`.
//! Also the number formats people read: thousands separators, percentages, signed pace `+1:05`.

use std::fmt::Write;

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

/// Escapes text for SVG/HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An integer with thousands separators: `1,234,567`.
pub fn fmt_int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A number with `dp` decimals and thousands separators: `12,345.6`.
pub fn fmt_num(x: f64, dp: usize) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let text = format!("{:.*}", dp, x.abs());
    let (int, frac) = text.split_once('.').map(|(i, f)| (i, Some(f))).unwrap_or((&text, None));
    let grouped = fmt_int(int.parse::<i64>().unwrap_or(0));
    let sign = if x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A percentage (0–100 in, 1 decimal out): `97.5 %`.
pub fn fmt_pct(pct: f64) -> String {
    format!("{} %", fmt_num(pct, 1))
}

/// Signed minutes:seconds of a pace in seconds: `+1:05`, `-0:30`, `0:00`.
pub fn fmt_pace(secs: f64) -> String {
    if !secs.is_finite() {
        return "—".into();
    }
    let total = secs.round() as i64;
    let sign = match total.signum() {
        1 => "+",
        -1 => "-",
        _ => "",
    };
    let a = total.unsigned_abs();
    format!("{sign}{}:{:02}", a / 60, a % 60)
}

/// Unsigned minutes:seconds of a duration in seconds: `5:07`, `1:02:03` past an hour.
pub fn fmt_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "—".into();
    }
    let a = secs.round().abs() as u64;
    if a >= 3600 {
        format!("{}:{:02}:{:02}", a / 3600, a / 60 % 60, a % 60)
    } else {
        format!("{}:{:02}", a / 60, a % 60)
    }
}

/// A compact axis number: `1.2k`, `3.4M`, `12`, `0.5`.
pub fn fmt_axis(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(x / 1e3))
    } else if a >= 1000.0 || x.fract() == 0.0 {
        fmt_num(x, 0)
    } else {
        trim(x)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

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
    fn formats_numbers_for_people() {
        assert_eq!(fmt_int(0), "0");
        assert_eq!(fmt_int(999), "999");
        assert_eq!(fmt_int(1000), "1,000");
        assert_eq!(fmt_int(1_234_567), "1,234,567");
        assert_eq!(fmt_int(-29_370), "-29,370");
        assert_eq!(fmt_num(12345.678, 1), "12,345.7");
        assert_eq!(fmt_num(-0.04, 1), "0.0");
        assert_eq!(fmt_num(-1234.5, 2), "-1,234.50");
        assert_eq!(fmt_pct(97.46), "97.5 %");
        assert_eq!(fmt_axis(25_000.0), "25k");
        assert_eq!(fmt_axis(2.5), "2.5");
    }

    #[test]
    fn pace_is_signed_minutes_and_seconds() {
        assert_eq!(fmt_pace(65.0), "+1:05");
        assert_eq!(fmt_pace(-30.0), "-0:30");
        assert_eq!(fmt_pace(0.2), "0:00");
        assert_eq!(fmt_pace(-599.6), "-10:00");
        assert_eq!(fmt_pace(f64::NAN), "—");
        assert_eq!(fmt_duration(307.0), "5:07");
        assert_eq!(fmt_duration(3723.0), "1:02:03");
    }

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

    #[test]
    fn empty_charts_say_so() {
        assert!(BarChart::new("t", "x", "y", vec![], vec![]).to_svg().contains("no data"));
        assert!(LineChart::new("t", "x", "y", vec![], vec![]).to_svg().contains("no data"));
        let h =
            Histogram { title: "h".into(), x_label: "m".into(), values: vec![], bins: 10, bounds: None, fmt: fmt_axis };
        assert!(h.to_svg().contains("no data"));
    }

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
