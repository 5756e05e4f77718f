//! One round: its fixes over the course, timing, pace, battery and the planted row defects.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::args::*;
use super::courses::*;
use super::rng::*;

#[derive(Debug, Clone)]
pub(super) struct Loc {
    pub(super) offset: f64,
    pub(super) hole: u8,
    pub(super) section: u16,
    pub(super) hole_section: u8,
    /// Nine being played (reported `currentNine` when this is the last location).
    pub(super) nine: u8,
    pub(super) lon: Option<f64>,
    pub(super) lat: Option<f64>,
    pub(super) pace: f64,
    pub(super) pace_gap: Option<f64>,
    pub(super) positional_gap: Option<f64>,
    pub(super) battery: f64,
    pub(super) is_cache: bool,
    pub(super) is_projected: bool,
    pub(super) is_problem: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Round {
    pub(super) id: Option<String>,
    pub(super) start: DateTime<Utc>,
    /// Replaces the formatted start time (bad row).
    pub(super) start_text: Option<&'static str>,
    pub(super) end: DateTime<Utc>,
    pub(super) start_hole: u8,
    pub(super) start_section: u16,
    pub(super) end_section: u16,
    pub(super) is_nine_hole: bool,
    pub(super) current_nine: u8,
    pub(super) goal_time: u32,
    pub(super) complete: bool,
    pub(super) device: String,
    pub(super) first_fix: String,
    pub(super) last_fix: String,
    pub(super) goal_name: &'static str,
    pub(super) goal_time_fraction: f64,
    pub(super) is_incomplete: bool,
    pub(super) is_secondary: bool,
    pub(super) is_auto_assigned: bool,
    pub(super) last_section_start: f64,
    pub(super) current_section: u16,
    pub(super) current_hole: u8,
    pub(super) current_hole_section: u8,
    pub(super) locations: Vec<Loc>,
}

/// Goal profiles: name and goalTimeFraction, with cumulative probabilities.
pub(super) const GOALS: [(&str, f64, f64); 4] = [
    ("Default", 1.0, 0.85),
    ("weekday mornings", 0.9, 0.93),
    ("Weekend, peak season", 1.0, 0.97),
    ("Members \"Fast\" Play", 0.8, 1.0),
];

/// A goalName that is valid UTF-8 here and becomes Latin-1 in the non-UTF-8 bad file.
pub(super) const NON_UTF8_GOAL: &str = "Ma\u{f1}ana";

pub(super) fn r3(x: f64) -> f64 {
    let v = (x * 1000.0).round() / 1000.0;
    if v == 0.0 { 0.0 } else { v }
}

pub(super) fn r6(x: f64) -> f64 {
    let v = (x * 1e6).round() / 1e6;
    if v == 0.0 { 0.0 } else { v }
}

pub(super) fn local_to_utc(tz: Tz, date: NaiveDate, seconds_of_day: i64) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight exists") + chrono::Duration::seconds(seconds_of_day);
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // In a spring-forward gap: the same wall time one hour later exists.
        None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

/// The day's round `idx` of a course: a pure function of its arguments.
pub(super) fn make_round(
    course: &Course,
    seed: u64,
    day: usize,
    date: NaiveDate,
    per_day: usize,
    idx: usize,
    salt: u64,
) -> Round {
    let t = course.t;
    let mut rng = Rng::from_parts(&[seed, TAG_ROUND, course.idx as u64, day as u64, idx as u64, salt]);

    // Which holes, in which order: (nine index, hole index within the nine, nine number reported).
    let shotgun = t.shotgun > 0.0 && rng.chance(t.shotgun);
    let nine_hole = rng.chance(t.nine_share);
    let mut plan: Vec<(usize, usize, u8)> = Vec::with_capacity(27);
    match t.kind {
        CourseKind::Loop9 => {
            let loops: u8 = if nine_hole { 1 } else { 2 };
            for lp in 0..loops {
                plan.extend((0..9).map(|h| (0, h, lp + 1)));
            }
        }
        CourseKind::ThreeNines => {
            let nines: Vec<usize> = if nine_hole {
                vec![rng.index(3)]
            } else if rng.chance(0.015) {
                vec![0, 1, 2]
            } else {
                let (a, b) = rng.pick(&[(0, 1), (1, 2), (2, 0), (0, 2)]);
                vec![a, b]
            };
            for n in nines {
                plan.extend((0..9).map(|h| (n, h, n as u8 + 1)));
            }
        }
        CourseKind::Eighteen => {
            let start = if shotgun {
                rng.pick(t.shotgun_holes)
            } else if rng.chance(t.back_start) {
                10
            } else if rng.chance(t.alt_start.1) {
                t.alt_start.0
            } else {
                1
            };
            let len = if nine_hole { 9 } else { 18 };
            for k in 0..len {
                let h = (start as usize - 1 + k) % 18;
                plan.push((h / 9, h % 9, (h / 9) as u8 + 1));
            }
        }
    }
    let planned_sections: usize = plan.iter().map(|&(n, h, _)| course.nines[n][h].sections.len()).sum();
    let abandoned = rng.chance(0.04);
    let played = if abandoned { ((plan.len() as f64 * rng.uniform(0.3, 0.8)) as usize).max(2) } else { plan.len() };

    // Tee time, course-local: spread over 06:00–19:00 by tee-sheet position; shotguns at 08:00/13:00.
    let interval = 13.0 * 3600.0 / per_day.max(1) as f64;
    let tee = if shotgun {
        (if rng.chance(0.5) { 8.0 } else { 13.0 }) * 3600.0 + rng.uniform(0.0, 600.0)
    } else {
        6.0 * 3600.0 + (idx % per_day.max(1)) as f64 * interval + rng.uniform(0.0, interval * 0.8)
    };
    let start = local_to_utc(t.tz, date, tee as i64);

    let goal_time = if nine_hole {
        t.goal9
    } else if plan.len() > 18 {
        t.goal9 * 3
    } else {
        t.goal18
    };
    let g = rng.f64();
    let (goal_name, goal_time_fraction, _) = *GOALS.iter().find(|x| g < x.2).unwrap_or(&GOALS[0]);
    let per_section = goal_time as f64 * goal_time_fraction / planned_sections as f64;
    let speed = (t.speed_mean * (1.0 + 0.07 * rng.normal())).clamp(0.7, 1.6);

    let fractional = rng.chance(0.3);
    let first_group = idx == 0 && salt == 0;
    let has_gap = !first_group && t.pace_gap_coverage > 0.0 && rng.chance(1.0 - (1.0 - t.pace_gap_coverage) * 0.7);
    let gap_p = t.pace_gap_coverage / (1.0 - (1.0 - t.pace_gap_coverage) * 0.7);
    let has_pos =
        !first_group && t.positional_gap_coverage > 0.0 && rng.chance(1.0 - (1.0 - t.positional_gap_coverage) * 0.7);
    let pos_p = t.positional_gap_coverage / (1.0 - (1.0 - t.positional_gap_coverage) * 0.7);
    let mut gap = rng.uniform(420.0, 720.0);
    let mut pos = 120.0 * rng.normal();
    let b = t.battery;
    let b_start = if rng.chance(b.p_low) {
        rng.uniform(b.low.0, b.low.1)
    } else if rng.chance(0.45) {
        100.0
    } else {
        rng.uniform(b.normal_min, 100.0)
    };
    let drain = rng.uniform(b.drain.0, b.drain.1);

    let mut offset = rng.uniform(240.0, 360.0);
    offset = if fractional { r3(offset) } else { offset.round() };
    let mut offset0: Option<f64> = None;
    let mut sections_passed = 0usize;
    let mut locs: Vec<Loc> = Vec::with_capacity(planned_sections);
    for (pi, &(n, h, nine_no)) in plan[..played].iter().enumerate() {
        let hole = &course.nines[n][h];
        let fatigue = if t.kind == CourseKind::Loop9 && nine_no == 2 { 1.07 } else { 1.0 };
        for (si, sec) in hole.sections.iter().enumerate() {
            let last_of_round = pi + 1 == played && si + 1 == hole.sections.len();
            if offset0.is_none() && si == 0 && rng.chance(0.85) {
                continue; // the trigger zone is the 2nd section of the start hole
            }
            let mut held_up = false;
            if offset0.is_some() {
                let mut dt = per_section * speed * fatigue * rng.uniform(0.6, 1.4);
                if rng.chance(0.02) {
                    dt += rng.uniform(60.0, 420.0);
                    held_up = true;
                }
                let dt = dt.max(25.0);
                offset = if fractional { r3(offset + dt) } else { (offset + dt).round() };
                sections_passed += 1;
                if !last_of_round && rng.chance(0.03) {
                    continue; // no fix inside this geofence
                }
            }
            let off0 = *offset0.get_or_insert(offset);
            let raw_pace = (offset - off0) - per_section * sections_passed as f64;
            let pace = if fractional { r3(raw_pace) } else { raw_pace.round() + 0.0 };
            gap = (gap + 25.0 * rng.normal() + if held_up { 200.0 } else { 0.0 }).max(30.0);
            pos += 30.0 * rng.normal();
            let pace_gap = (has_gap && rng.chance(gap_p)).then(|| r3(gap));
            let positional_gap = (has_pos && rng.chance(pos_p)).then(|| r3(pos));
            let battery = (b_start - drain * offset / 3600.0).max(0.0).round();
            let is_problem = pace >= 600.0 && rng.chance(0.12);
            let is_projected = rng.chance(0.002);
            locs.push(Loc {
                offset,
                hole: hole.number,
                section: sec.number,
                hole_section: sec.hole_section,
                nine: nine_no,
                lon: Some(r6(sec.lon + rng.uniform(-8e-5, 8e-5))),
                lat: Some(r6(sec.lat + rng.uniform(-8e-5, 8e-5))),
                pace,
                pace_gap,
                positional_gap,
                battery,
                is_cache: false,
                is_projected,
                is_problem,
            });
        }
    }
    // An offline stretch uploaded from the cache later.
    if rng.chance(0.1) {
        let a = rng.index(locs.len());
        let len = 2 + rng.index(5);
        for l in locs.iter_mut().skip(a).take(len) {
            l.is_cache = true;
        }
    }

    let first = &locs[0];
    let last = &locs[locs.len() - 1];
    let start_ts = start.timestamp();
    let id = object_id(start_ts, &mut rng);
    let device = course.devices[rng.index(course.devices.len())].clone();
    let first_fix = object_id(start_ts + first.offset as i64, &mut rng);
    let last_fix = object_id(start_ts + last.offset as i64, &mut rng);
    let end = start + chrono::Duration::seconds((last.offset + rng.uniform(180.0, 420.0)).round() as i64);
    let start_hole = course.nines[plan[0].0][plan[0].1].number;
    Round {
        id: Some(id),
        start,
        start_text: None,
        end,
        start_hole,
        start_section: first.section,
        end_section: last.section,
        is_nine_hole: nine_hole,
        current_nine: last.nine,
        goal_time,
        complete: !abandoned && locs.len() * 4 >= planned_sections * 3,
        device,
        first_fix,
        last_fix,
        goal_name,
        goal_time_fraction,
        is_incomplete: abandoned,
        is_secondary: rng.chance(0.03),
        is_auto_assigned: rng.chance(0.25),
        last_section_start: last.offset,
        current_section: last.section,
        current_hole: last.hole,
        current_hole_section: last.hole_section,
        locations: locs,
    }
}

impl Round {
    /// The export taken while the round was still being played: the first ~55 % of its locations.
    pub(super) fn into_snapshot(mut self) -> Round {
        let keep = (self.locations.len() * 55 / 100).max(1);
        self.locations.truncate(keep);
        let last = &self.locations[keep - 1];
        self.end = self.start + chrono::Duration::seconds(last.offset as i64);
        self.complete = false;
        self.is_incomplete = false;
        self.end_section = last.section;
        self.current_section = last.section;
        self.current_hole = last.hole;
        self.current_hole_section = last.hole_section;
        self.current_nine = last.nine;
        self.last_section_start = last.offset;
        self
    }

    /// A round registered by the tee sheet whose device never sent a fix.
    pub(super) fn into_empty(mut self) -> Round {
        self.locations.clear();
        self.end = self.start;
        self.complete = false;
        self.end_section = self.start_section;
        self.current_section = self.start_section;
        self.current_hole = self.start_hole;
        self.current_hole_section = 1;
        self.last_section_start = 0.0;
        self
    }

    /// Applies a deliberate defect; returns (affected location indices, value as written).
    pub(super) fn apply_defect(&mut self, kind: RowDefectKind, rng: &mut Rng) -> (Vec<usize>, String) {
        let n = self.locations.len();
        match kind {
            RowDefectKind::InvalidLongitude => {
                let j = rng.index(n);
                self.locations[j].lon = Some(200.0);
                (vec![j], "200".into())
            }
            RowDefectKind::InvalidLatitude => {
                let j = rng.index(n);
                self.locations[j].lat = Some(100.0);
                (vec![j], "100".into())
            }
            RowDefectKind::MissingRoundId => {
                self.id = None;
                (Vec::new(), String::new())
            }
            RowDefectKind::UnparseableStartTime => {
                self.start_text = Some("not-a-date");
                (Vec::new(), "not-a-date".into())
            }
            RowDefectKind::BatteryOutOfRange => {
                let j = rng.index(n);
                let v = if rng.chance(0.5) { 140.0 } else { -5.0 };
                self.locations[j].battery = v;
                (vec![j], format!("{v}"))
            }
            RowDefectKind::NullCoordinates => {
                let j = rng.index(n);
                let len = (1 + rng.index(3)).min(n - j);
                for l in &mut self.locations[j..j + len] {
                    l.lon = None;
                    l.lat = None;
                }
                ((j..j + len).collect(), String::new())
            }
            RowDefectKind::EmptyLocations => (Vec::new(), String::new()),
        }
    }
}
