//! Text in charts and pages: SVG/HTML escaping and the number formats people read (thousands
//! separators, percentages, signed pace `+1:05`, durations, axis labels).

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

pub(super) fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
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
}
