//! The devices page: battery by course, low-battery fixes over time and the devices with the
//! most of them.

use std::collections::BTreeSet;

use super::common::{blank_page, date_of, fail, no_data, opt_pct};
use super::data::{COURSE, Gold};
use super::{Card, Cell, Grid, Page, Section};
use crate::web::charts::{BarChart, LineChart, RED, Series, fmt_int, fmt_pct};

pub async fn page(g: &Gold) -> Page {
    const T: &str = "Devices and battery health";
    if !g.has_all(&["gold.device_health_errors", "gold.fact_rounds"]) {
        return no_data(T);
    }
    let mut p = blank_page(T);

    match g
        .rows(&format!(
            "SELECT count(*), sum(CASE WHEN health_flag = 'battery_critical' THEN 1 ELSE 0 END), \
             count(DISTINCT device_id), count(DISTINCT round_id) FROM gold.device_health_errors WHERE {COURSE}"
        ))
        .await
    {
        Ok(rows) => {
            let r = &rows[0];
            p.cards.push(Card::new("low_battery_fixes", "Low-battery fixes (< 20 %)", fmt_int(r.i(0))));
            p.cards.push(Card::new("critical_fixes", "Critical (< 10 %)", fmt_int(r.i(1))));
            p.cards.push(Card::new("devices_affected", "Devices with low battery", fmt_int(r.i(2))));
            p.cards.push(Card::new("rounds_affected", "Rounds affected", fmt_int(r.i(3))));
        }
        Err(e) => fail(&mut p, e),
    }

    let mut s = Section::new("battery-by-course", "Battery by course");
    s.note = "From gold.fact_rounds (non-padding fixes): average and lowest battery, share of fixes below 20 %.".into();
    match g
        .rows(&format!(
            "SELECT course_id, avg(avg_battery_pct), min(min_battery_pct), sum(low_battery_fix_count), \
             sum(critical_battery_fix_count), sum(fix_count) FROM gold.fact_rounds WHERE {COURSE} \
             GROUP BY course_id ORDER BY course_id"
        ))
        .await
    {
        Ok(rows) => {
            s.charts.push(
                BarChart::new(
                    "Average and lowest battery per course (%)",
                    "course",
                    "battery %",
                    rows.iter().map(|r| r.s(0)).collect(),
                    vec![
                        Series::new("average", rows.iter().map(|r| r.f(1)).collect()),
                        Series::new("lowest", rows.iter().map(|r| r.f(2)).collect()),
                    ],
                )
                .line(20.0, "low < 20 %", RED)
                .to_svg(),
            );
            let mut grid =
                Grid::new(&["course", "#avg battery", "#lowest", "#fixes < 20 %", "#fixes < 10 %", "#share < 20 %"]);
            for r in &rows {
                grid.rows.push(vec![
                    Cell::text(r.s(0)),
                    Cell::num(opt_pct(r.f(1))),
                    Cell::num(opt_pct(r.f(2))),
                    Cell::num(fmt_int(r.i(3))),
                    Cell::num(fmt_int(r.i(4))),
                    Cell::num(fmt_pct(100.0 * r.i(3) as f64 / r.i(5).max(1) as f64)),
                ]);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);

    let mut s = Section::new("health-over-time", "Low-battery fixes over time");
    s.note = "gold.device_health_errors by day of the fix (UTC): battery_low 10–20 %, battery_critical < 10 %.".into();
    match g
        .rows(&format!(
            "SELECT CAST(CAST(fix_timestamp AS DATE) AS VARCHAR) AS day, health_flag, count(*) \
             FROM gold.device_health_errors WHERE {COURSE} AND fix_timestamp IS NOT NULL \
             GROUP BY 1, 2 ORDER BY 1"
        ))
        .await
    {
        Ok(rows) => {
            let days: Vec<String> = rows.iter().map(|r| r.s(0)).collect::<BTreeSet<_>>().into_iter().collect();
            let series = ["battery_low", "battery_critical"]
                .iter()
                .map(|f| {
                    Series::new(
                        *f,
                        days.iter()
                            .map(|d| {
                                Some(rows.iter().find(|r| r.s(0) == *d && r.s(1) == *f).map(|r| r.i(2)).unwrap_or(0)
                                    as f64)
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
            .rows(&format!(
                "SELECT d.device_id, d.rounds_seen, d.courses_seen, d.min_battery_pct, d.avg_battery_pct, \
                 COALESCE(e.n, 0) AS low_fixes, d.last_seen_ts \
                 FROM gold.dim_device d \
                 LEFT JOIN (SELECT device_id, count(*) AS n FROM gold.device_health_errors WHERE {COURSE} \
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
                    let low = r.f(3).unwrap_or(100.0);
                    grid.rows.push(vec![
                        Cell::text(r.s(0)).class("mono"),
                        Cell::num(fmt_int(r.i(1))),
                        Cell::num(fmt_int(r.i(2))),
                        Cell::num(opt_pct(r.f(3))).class(if low < 10.0 {
                            "bad"
                        } else if low < 20.0 {
                            "warn"
                        } else {
                            ""
                        }),
                        Cell::num(opt_pct(r.f(4))),
                        Cell::num(fmt_int(r.i(5))),
                        Cell::text(date_of(&r.s(6))),
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
