//! What every lakehouse page uses: an empty page, the "no data yet" page, errors shown on the
//! page, the all-dates note of per-course summaries, and small formats and statistics.

use super::data::Gold;
use super::{Card, NO_DATA, Page, Section};
use crate::web::charts::{GREEN, RED, fmt_int, fmt_pct};

pub(super) fn blank_page(title: &str) -> Page {
    Page { title: title.into(), ..Page::default() }
}

pub(super) fn no_data(title: &str) -> Page {
    Page { title: title.into(), no_data: Some(NO_DATA.into()), ..Page::default() }
}

pub(super) fn fail(p: &mut Page, e: String) {
    tracing::warn!(error = %e, page = %p.title, "lakehouse query failed");
    let msg = match p.error.take() {
        Some(prev) => format!("{prev}; {e}"),
        None => e,
    };
    p.error = Some(msg);
}

/// Says on a section built from a per-course summary (not keyed by round) that a date filter does
/// not narrow it.
pub fn all_dates_note(g: &Gold, s: &mut Section) {
    if g.dated() {
        if !s.note.is_empty() {
            s.note.push(' ');
        }
        s.note.push_str("This summary covers all dates: the date filter narrows the tables keyed by round.");
    }
}

/// The "Rounds" card (with how many are complete) and the card of the local dates they were
/// played on (`—` without rounds), as the overview and course pages show them.
pub(super) fn round_cards(p: &mut Page, rounds: i64, complete: i64, (first, last): (&str, &str), range_title: &str) {
    p.cards.push(Card::new("rounds", "Rounds", fmt_int(rounds)).note(format!("{} complete", fmt_int(complete))));
    let range = if first.is_empty() { "—".to_string() } else { format!("{first} → {last}") };
    p.cards.push(Card::new("date_range", range_title, range));
}

pub(super) fn opt_pct(x: Option<f64>) -> String {
    x.map(fmt_pct).unwrap_or_else(|| "—".into())
}

/// The date part of a timestamp text (`2025-06-01T07:00:00Z` → `2025-06-01`).
pub(super) fn date_of(ts: &str) -> String {
    ts.get(..10).unwrap_or(ts).to_string()
}

pub(super) fn score_class(score: f64) -> &'static str {
    if score >= 80.0 {
        "good"
    } else if score >= 60.0 {
        "warn"
    } else {
        "bad"
    }
}

pub(super) fn score_color(score: f64) -> &'static str {
    if score >= 80.0 {
        GREEN
    } else if score >= 60.0 {
        "#f0a202"
    } else {
        RED
    }
}

pub(super) const WEEKDAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `(lower, upper)` IQR outlier bounds of sorted values: max(0, Q1 − 1.5·IQR), Q3 + 1.5·IQR.
pub fn iqr_bounds(sorted: &[f64]) -> Option<(f64, f64)> {
    if sorted.is_empty() {
        return None;
    }
    let q = |p: f64| {
        let pos = p * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    };
    let (q1, q3) = (q(0.25), q(0.75));
    let iqr = q3 - q1;
    Some(((q1 - 1.5 * iqr).max(0.0), q3 + 1.5 * iqr))
}

pub fn median(sorted: &[f64]) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    Some(if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqr_bounds_and_median() {
        let v: Vec<f64> = (1..=9).map(f64::from).collect();
        assert_eq!(median(&v), Some(5.0));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
        assert_eq!(median(&[]), None);
        // Q1 = 3, Q3 = 7, IQR = 4 → (max(0, -3), 13).
        assert_eq!(iqr_bounds(&v), Some((0.0, 13.0)));
        let v = [100.0, 110.0, 120.0, 130.0, 140.0];
        assert_eq!(iqr_bounds(&v), Some((80.0, 160.0)));
    }

    #[test]
    fn dates_and_scores() {
        assert_eq!(date_of("2025-06-01T07:00:00Z"), "2025-06-01");
        assert_eq!(date_of(""), "");
        assert_eq!(score_class(85.0), "good");
        assert_eq!(score_class(65.0), "warn");
        assert_eq!(score_class(10.0), "bad");
    }
}
