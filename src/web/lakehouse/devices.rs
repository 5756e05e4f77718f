//! The devices page: battery by course, low-battery fixes over time and the devices with the
//! most of them. Low-battery fixes come from `gold.round_device_health` (counted per round,
//! device, day and flag: a few rows per round instead of one per fix).

use std::collections::BTreeSet;

use super::common::{blank_page, date_of, fail, no_data, opt_pct};
use super::data::{COURSE, Gold, read_model};
use super::{Card, Cell, Grid, Page, Section};
use crate::web::charts::{BarChart, LineChart, RED, Series, fmt_int, fmt_pct};

read_model! {
    /// The low-battery totals of the cards.
    struct HealthTotals { fixes: i64, critical: i64, devices: i64, rounds: i64 }
}

read_model! {
    /// Battery of one course, over its rounds.
    struct CourseBattery {
        course_id: String,
        avg_battery: Option<f64>,
        min_battery: Option<f64>,
        low_fixes: i64,
        critical_fixes: i64,
        fixes: i64,
    }
}

read_model! {
    /// Low-battery fixes of one kind on one day.
    struct DayFlag { day: String, health_flag: String, fixes: i64 }
}

read_model! {
    /// One device with its low-battery fixes.
    struct Device {
        device_id: String,
        rounds_seen: i64,
        courses_seen: i64,
        min_battery_pct: Option<f64>,
        avg_battery_pct: Option<f64>,
        low_fixes: i64,
        last_seen_ts: String,
    }
}

pub async fn page(g: &Gold) -> Page {
    const T: &str = "Devices and battery health";
    if !g.has_all(&["gold.round_device_health", "gold.fact_rounds"]) {
        return no_data(T);
    }
    let mut p = blank_page(T);

    match g
        .read_one::<HealthTotals>(&format!(
            "SELECT sum(fixes) AS fixes, sum(CASE WHEN health_flag = 'battery_critical' THEN fixes ELSE 0 END) \
             AS critical, count(DISTINCT device_id) AS devices, count(DISTINCT round_id) AS rounds \
             FROM gold.round_device_health WHERE {COURSE}"
        ))
        .await
    {
        Ok(t) => {
            p.cards.push(Card::new("low_battery_fixes", "Low-battery fixes (< 20 %)", fmt_int(t.fixes)));
            p.cards.push(Card::new("critical_fixes", "Critical (< 10 %)", fmt_int(t.critical)));
            p.cards.push(Card::new("devices_affected", "Devices with low battery", fmt_int(t.devices)));
            p.cards.push(Card::new("rounds_affected", "Rounds affected", fmt_int(t.rounds)));
        }
        Err(e) => fail(&mut p, e),
    }

    let mut s = Section::new("battery-by-course", "Battery by course");
    s.note = "From gold.fact_rounds (non-padding fixes): average and lowest battery, share of fixes below 20 %.".into();
    match g
        .read::<CourseBattery>(&format!(
            "SELECT course_id, avg(avg_battery_pct) AS avg_battery, min(min_battery_pct) AS min_battery, \
             sum(low_battery_fix_count) AS low_fixes, sum(critical_battery_fix_count) AS critical_fixes, \
             sum(fix_count) AS fixes FROM gold.fact_rounds WHERE {COURSE} GROUP BY course_id ORDER BY course_id"
        ))
        .await
    {
        Ok(rows) => {
            s.charts.push(
                BarChart::new(
                    "Average and lowest battery per course (%)",
                    "course",
                    "battery %",
                    rows.iter().map(|r| r.course_id.clone()).collect(),
                    vec![
                        Series::new("average", rows.iter().map(|r| r.avg_battery).collect()),
                        Series::new("lowest", rows.iter().map(|r| r.min_battery).collect()),
                    ],
                )
                .line(20.0, "low < 20 %", RED)
                .to_svg(),
            );
            let mut grid =
                Grid::new(&["course", "#avg battery", "#lowest", "#fixes < 20 %", "#fixes < 10 %", "#share < 20 %"]);
            for r in &rows {
                grid.rows.push(vec![
                    Cell::text(&r.course_id),
                    Cell::num(opt_pct(r.avg_battery)),
                    Cell::num(opt_pct(r.min_battery)),
                    Cell::num(fmt_int(r.low_fixes)),
                    Cell::num(fmt_int(r.critical_fixes)),
                    Cell::num(fmt_pct(100.0 * r.low_fixes as f64 / r.fixes.max(1) as f64)),
                ]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    let mut s = Section::new("health-over-time", "Low-battery fixes over time");
    s.note = "gold.round_device_health by day of the fix (UTC): battery_low 10–20 %, battery_critical < 10 %.".into();
    match g
        .read::<DayFlag>(&format!(
            "SELECT CAST(fix_date AS VARCHAR) AS day, health_flag, sum(fixes) AS fixes \
             FROM gold.round_device_health WHERE {COURSE} AND fix_date IS NOT NULL \
             GROUP BY 1, 2 ORDER BY 1"
        ))
        .await
    {
        Ok(rows) => {
            let days: Vec<String> = rows.iter().map(|r| r.day.clone()).collect::<BTreeSet<_>>().into_iter().collect();
            let series = ["battery_low", "battery_critical"]
                .iter()
                .map(|f| {
                    Series::new(
                        *f,
                        days.iter()
                            .map(|d| {
                                let n = rows.iter().find(|r| r.day == *d && r.health_flag == *f).map_or(0, |r| r.fixes);
                                Some(n as f64)
                            })
                            .collect(),
                    )
                })
                .collect();
            if days.len() > 1 {
                s.charts.push(LineChart::new("Low-battery fixes per day", "day", "fixes", days, series).to_svg());
            } else {
                s.charts
                    .push(BarChart::new("Low-battery fixes per day", "day", "fixes", days, series).stacked().to_svg());
            }
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    if g.has_all(&["gold.dim_device", "gold.dim_round"]) {
        let mut s = Section::new("devices", "Devices with the most low-battery fixes");
        match g
            .read::<Device>(&format!(
                "SELECT d.device_id, d.rounds_seen, d.courses_seen, d.min_battery_pct, d.avg_battery_pct, \
                 COALESCE(e.n, 0) AS low_fixes, d.last_seen_ts \
                 FROM gold.dim_device d \
                 LEFT JOIN (SELECT device_id, sum(fixes) AS n FROM gold.round_device_health WHERE {COURSE} \
                            GROUP BY device_id) e ON e.device_id = d.device_id \
                 WHERE $1 = '' OR d.device_id IN (SELECT device_id FROM gold.dim_round WHERE course_id = $1) \
                 ORDER BY low_fixes DESC, d.min_battery_pct ASC, d.device_id LIMIT 25"
            ))
            .await
        {
            Ok(rows) => {
                let mut grid = Grid::new(&[
                    "device",
                    "#rounds",
                    "#courses",
                    "#lowest battery",
                    "#avg battery",
                    "#fixes < 20 %",
                    "last seen",
                ]);
                for r in &rows {
                    let low = r.min_battery_pct.unwrap_or(100.0);
                    grid.rows.push(vec![
                        Cell::text(&r.device_id).class("mono"),
                        Cell::num(fmt_int(r.rounds_seen)),
                        Cell::num(fmt_int(r.courses_seen)),
                        Cell::num(opt_pct(r.min_battery_pct)).class(if low < 10.0 {
                            "bad"
                        } else if low < 20.0 {
                            "warn"
                        } else {
                            ""
                        }),
                        Cell::num(opt_pct(r.avg_battery_pct)),
                        Cell::num(fmt_int(r.low_fixes)),
                        Cell::text(date_of(&r.last_seen_ts)),
                    ]);
                }
                s.table = Some(grid);
            }
            Err(e) => fail(&mut p, e),
        }
        p.sections.push(s);
    }
    p
}
