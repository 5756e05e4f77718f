//! The course models of REFERENCE §7.1–7.3: the five pilot layouts (nines, sections, geometry,
//! time zones, play patterns) and `course06`… cycling them.

use chrono_tz::Tz;

use super::args::*;
use super::rng::*;

// Course models (§7.1–7.3)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CourseKind {
    /// 9 physical holes; 18-hole rounds replay holes 1–9 (sections 1–24) as a second loop.
    Loop9,
    /// 27-hole facility: three nines, each numbered 1–9, sections cumulative across the nines.
    ThreeNines,
    /// 18 holes numbered 1–18.
    Eighteen,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Battery {
    /// Share of rounds whose device starts low (→ low/critical events).
    pub(super) p_low: f64,
    pub(super) low: (f64, f64),
    pub(super) normal_min: f64,
    /// Percentage points per hour.
    pub(super) drain: (f64, f64),
}

#[derive(Debug)]
pub(super) struct Template {
    pub(super) id: &'static str,
    pub(super) name: &'static str,
    pub(super) tz: Tz,
    pub(super) center: (f64, f64),
    pub(super) kind: CourseKind,
    /// Sections per hole, per physical nine.
    pub(super) nines: &'static [&'static [u8]],
    /// First section number of each nine (Erin Hills skips 28, the halfway house).
    pub(super) nine_first_section: &'static [u16],
    pub(super) goal18: u32,
    pub(super) goal9: u32,
    /// Share of 9-hole (one-nine) rounds.
    pub(super) nine_share: f64,
    /// Share of regular starts at hole 10 (18-hole courses).
    pub(super) back_start: f64,
    /// A third start point and its share.
    pub(super) alt_start: (u8, f64),
    /// Share of shotgun / random starts and the holes they start on.
    pub(super) shotgun: f64,
    pub(super) shotgun_holes: &'static [u8],
    /// Mean of (actual / goal) time: > 1 = behind goal on average.
    pub(super) speed_mean: f64,
    pub(super) pace_gap_coverage: f64,
    pub(super) positional_gap_coverage: f64,
    pub(super) battery: Battery,
}

pub(super) const PILOTS: [Template; 5] = [
    Template {
        id: "americanfalls",
        name: "American Falls Golf Course",
        tz: chrono_tz::America::Boise,
        center: (-112.8712, 42.7793),
        kind: CourseKind::Loop9,
        nines: &[&[3, 3, 2, 3, 3, 3, 2, 3, 2]],
        nine_first_section: &[1],
        goal18: 14340,
        goal9: 6720,
        nine_share: 0.528,
        back_start: 0.0,
        alt_start: (1, 0.0),
        shotgun: 0.0,
        shotgun_holes: &[],
        speed_mean: 0.95,
        pace_gap_coverage: 0.91,
        positional_gap_coverage: 0.91,
        battery: Battery { p_low: 0.55, low: (4.0, 26.0), normal_min: 45.0, drain: (5.0, 12.0) },
    },
    Template {
        id: "bradshawfarmgc",
        name: "Bradshaw Farm Golf Club",
        tz: chrono_tz::America::New_York,
        center: (-84.448, 34.153),
        kind: CourseKind::ThreeNines,
        nines: &[&[3, 3, 4, 2, 3, 3, 4, 2, 3], &[3, 4, 3, 2, 3, 3, 4, 2, 3], &[3, 3, 3, 2, 3, 4, 3, 2, 3]],
        nine_first_section: &[1, 28, 55],
        goal18: 14340,
        goal9: 6720,
        nine_share: 0.588,
        back_start: 0.0,
        alt_start: (1, 0.0),
        shotgun: 0.0,
        shotgun_holes: &[],
        speed_mean: 1.035,
        pace_gap_coverage: 0.94,
        positional_gap_coverage: 0.82,
        battery: Battery { p_low: 0.0, low: (30.0, 40.0), normal_min: 85.0, drain: (2.0, 7.0) },
    },
    Template {
        id: "erinhills",
        name: "Erin Hills",
        tz: chrono_tz::America::Chicago,
        center: (-88.3525, 43.2508),
        kind: CourseKind::Eighteen,
        nines: &[&[3, 4, 3, 2, 3, 3, 4, 2, 3], &[3, 3, 4, 2, 3, 3, 4, 2, 3]],
        nine_first_section: &[1, 29],
        goal18: 15840,
        goal9: 7920,
        nine_share: 0.08,
        back_start: 0.22,
        alt_start: (4, 0.05),
        shotgun: 0.0,
        shotgun_holes: &[],
        speed_mean: 0.995,
        pace_gap_coverage: 0.92,
        positional_gap_coverage: 0.88,
        battery: Battery { p_low: 0.009, low: (10.0, 28.0), normal_min: 75.0, drain: (3.0, 8.0) },
    },
    Template {
        id: "indiancreek",
        name: "Indian Creek Country Club",
        tz: chrono_tz::America::New_York,
        center: (-80.1397, 25.8748),
        kind: CourseKind::Eighteen,
        nines: &[&[3, 3, 4, 2, 3, 3, 3, 2, 3], &[3, 4, 3, 2, 3, 3, 4, 2, 3]],
        nine_first_section: &[1, 27],
        goal18: 14340,
        goal9: 6720,
        nine_share: 0.305,
        back_start: 0.15,
        alt_start: (1, 0.0),
        shotgun: 0.182,
        shotgun_holes: &[3, 5, 7, 12, 14, 16, 18],
        speed_mean: 1.04,
        pace_gap_coverage: 0.0,
        positional_gap_coverage: 0.0,
        battery: Battery { p_low: 0.004, low: (10.0, 25.0), normal_min: 80.0, drain: (3.0, 7.0) },
    },
    Template {
        id: "pinehurst4",
        name: "Pinehurst No. 4",
        tz: chrono_tz::America::New_York,
        center: (-79.4689, 35.1937),
        kind: CourseKind::Eighteen,
        nines: &[&[3, 4, 3, 2, 3, 3, 4, 2, 3], &[3, 3, 4, 2, 3, 3, 4, 2, 3]],
        nine_first_section: &[1, 28],
        goal18: 15840,
        goal9: 7920,
        nine_share: 0.176,
        back_start: 0.12,
        alt_start: (1, 0.0),
        shotgun: 0.12,
        shotgun_holes: &[2, 4, 6, 8, 11, 13, 15, 17],
        speed_mean: 0.95,
        pace_gap_coverage: 0.93,
        positional_gap_coverage: 0.92,
        battery: Battery { p_low: 0.024, low: (12.0, 30.0), normal_min: 75.0, drain: (3.0, 9.0) },
    },
];

#[derive(Debug, Clone, Copy)]
pub(super) struct SectionGeo {
    pub(super) number: u16,
    pub(super) hole_section: u8,
    pub(super) lon: f64,
    pub(super) lat: f64,
}

#[derive(Debug)]
pub(super) struct Hole {
    pub(super) number: u8,
    pub(super) sections: Vec<SectionGeo>,
}

#[derive(Debug)]
pub(super) struct Course {
    pub(super) idx: usize,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) t: &'static Template,
    pub(super) nines: Vec<Vec<Hole>>,
    pub(super) devices: Vec<String>,
    pub(super) center: (f64, f64),
}

/// cos/sin of k·40° for k = 0..9 (nine holes around a loop), as literals so no libm is involved.
pub(super) const RING: [(f64, f64); 9] = [
    (1.0, 0.0),
    (0.766_044_443_118_978, 0.642_787_609_686_539_3),
    (0.173_648_177_666_930_4, 0.984_807_753_012_208),
    (-0.5, 0.866_025_403_784_438_7),
    (-0.939_692_620_785_908_4, 0.342_020_143_325_668_8),
    (-0.939_692_620_785_908_4, -0.342_020_143_325_668_8),
    (-0.5, -0.866_025_403_784_438_7),
    (0.173_648_177_666_930_4, -0.984_807_753_012_208),
    (0.766_044_443_118_978, -0.642_787_609_686_539_3),
];

impl Course {
    pub(super) fn build(idx: usize, seed: u64, rounds_per_day: usize) -> Course {
        let t = &PILOTS[idx % PILOTS.len()];
        let cycle = (idx / PILOTS.len()) as f64;
        let (id, name) = if idx < PILOTS.len() {
            (t.id.to_string(), t.name.to_string())
        } else {
            (format!("course{:02}", idx + 1), format!("Course {:02} Golf Club", idx + 1))
        };
        let center = (t.center.0 + 0.37 * cycle, t.center.1 + 0.23 * cycle);
        // ~500 m loop radius; a degree of longitude is shorter than one of latitude (lat ≤ 45°).
        let r_lat = 0.0045;
        let r_lon = r_lat * 1.3;
        let n_nines = t.nines.len();
        let mut nines = Vec::with_capacity(n_nines);
        for (n, holes) in t.nines.iter().enumerate() {
            let nine_center = (center.0 + (n as f64 - (n_nines as f64 - 1.0) / 2.0) * 0.014, center.1);
            let mut number = t.nine_first_section[n];
            let mut out = Vec::with_capacity(holes.len());
            for (h, &count) in holes.iter().enumerate() {
                let tee = (nine_center.0 + r_lon * RING[h].0, nine_center.1 + r_lat * RING[h].1);
                let green = (nine_center.0 + r_lon * RING[(h + 1) % 9].0, nine_center.1 + r_lat * RING[(h + 1) % 9].1);
                let mut sections = Vec::with_capacity(count as usize);
                for k in 0..count {
                    let f = if count > 1 { k as f64 / (count as f64 - 1.0) } else { 0.0 };
                    sections.push(SectionGeo {
                        number,
                        hole_section: k + 1,
                        lon: tee.0 + (green.0 - tee.0) * f,
                        lat: tee.1 + (green.1 - tee.1) * f,
                    });
                    number += 1;
                }
                let hole_number = match t.kind {
                    CourseKind::Eighteen => (n * 9 + h + 1) as u8,
                    _ => (h + 1) as u8,
                };
                out.push(Hole { number: hole_number, sections });
            }
            nines.push(out);
        }
        // A device pool reused by every round of the course, every day.
        let pool = (rounds_per_day / 2 + 4).clamp(6, 400);
        let mut drng = Rng::from_parts(&[seed, TAG_DEVICE, idx as u64]);
        let devices = (0..pool).map(|d| object_id(1_680_000_000 + d as i64 * 3_607, &mut drng)).collect();
        Course { idx, id, name, t, nines, devices, center }
    }

    pub(super) fn info(&self) -> CourseInfo {
        let max_section = self.nines.iter().flatten().flat_map(|h| h.sections.iter()).map(|s| s.number).max();
        let max_hole = self.nines.iter().flatten().map(|h| h.number).max();
        CourseInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            timezone: self.t.tz.name().to_string(),
            layout: match self.t.kind {
                CourseKind::Loop9 => "9-hole loop (18-hole rounds replay 1-9)",
                CourseKind::ThreeNines => "27-hole facility (3 nines, holes 1-9 each)",
                CourseKind::Eighteen => "18-hole",
            },
            max_section: max_section.unwrap_or(0),
            max_hole: max_hole.unwrap_or(0),
            center: self.center,
        }
    }
}
