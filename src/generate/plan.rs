//! Which rounds go to which file: formats, layouts, late re-deliveries and bad files per day.

use super::args::*;
use super::courses::*;
use super::rng::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Variant {
    Full,
    /// In-progress export (the full round is re-exported the next day).
    Snapshot,
    Empty,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct RoundRef {
    pub(super) day: usize,
    pub(super) idx: usize,
    pub(super) variant: Variant,
    pub(super) defect: Option<RowDefectKind>,
    pub(super) dup: bool,
    pub(super) carried: bool,
}

impl RoundRef {
    pub(super) fn own(day: usize, idx: usize) -> Self {
        RoundRef { day, idx, variant: Variant::Full, defect: None, dup: false, carried: false }
    }
}

#[derive(Debug)]
pub(super) struct FilePlan {
    pub(super) n: usize,
    pub(super) layout: Layout,
    pub(super) course_field: String,
    pub(super) with_date: bool,
    pub(super) rounds: Vec<RoundRef>,
}

#[derive(Debug)]
pub(super) struct DayPlan {
    pub(super) course: usize,
    pub(super) day: usize,
    pub(super) files: Vec<FilePlan>,
    pub(super) bad: Vec<BadFileKind>,
}

pub(super) fn json_course_days(total: usize, share: f64) -> usize {
    if share <= 0.0 || total == 0 {
        0
    } else if share >= 1.0 {
        total
    } else {
        let n = (total as f64 * share).round() as usize;
        if total >= 2 { n.clamp(1, total - 1) } else { n }
    }
}

pub(super) fn plan(args: &GenerateArgs, courses: &[Course]) -> Vec<DayPlan> {
    let (nc, nd, nr, seed) = (courses.len(), args.shape.days, args.shape.rounds, args.shape.seed);
    let total = nc * nd;
    let mut prng = Rng::from_parts(&[seed, TAG_PLAN]);
    let mut order: Vec<usize> = (0..total).collect();
    prng.shuffle(&mut order);
    let mut is_json = vec![false; total];
    for &i in &order[..json_course_days(total, args.json_share)] {
        is_json[i] = true;
    }
    // Rounds still in play at export time: snapshot today, full tomorrow.
    let mut carry: Vec<Vec<usize>> = vec![Vec::new(); total];
    for c in 0..nc {
        for d in 0..nd {
            let mut rng = Rng::from_parts(&[seed, TAG_CARRY, c as u64, d as u64]);
            if d + 1 < nd && nr >= 3 && (rng.chance(0.5) || (c == 0 && d == 0)) {
                carry[c * nd + d].push(nr - 1);
                if nr >= 6 && rng.chance(0.3) {
                    carry[c * nd + d].push(nr - 2);
                }
            }
        }
    }

    let mut plans = Vec::with_capacity(total);
    let mut defect_counter = 0usize;
    let mut json_ordinal = 0usize;
    for (c, course) in courses.iter().enumerate() {
        for d in 0..nd {
            let i = c * nd + d;
            let mut rng = Rng::from_parts(&[seed, TAG_PLAN, c as u64, d as u64]);
            let mut own: Vec<RoundRef> = (0..nr).map(|idx| RoundRef::own(d, idx)).collect();
            for &idx in &carry[i] {
                own[idx].variant = Variant::Snapshot;
            }
            let two = nr >= 6 && (rng.chance(0.4) || i == total / 2);
            let split = if two { nr / 3 + rng.index(nr / 3 + 1) } else { nr };
            // Overlapping export windows: a few rounds of file 1 again at the top of file 2.
            let mut dups: Vec<usize> = Vec::new();
            if two {
                let k = 1 + rng.index(3.min(split - 1));
                let mut cands: Vec<usize> = (1..split).collect();
                for _ in 0..k {
                    dups.push(cands.swap_remove(rng.index(cands.len())));
                }
                dups.sort_unstable();
            }
            let json = is_json[i];
            let ordinal = if json {
                json_ordinal += 1;
                Some(json_ordinal - 1)
            } else {
                None
            };
            let single = if ordinal == Some(0) && nr >= 2 {
                let cands: Vec<usize> = (1..split).filter(|x| !dups.contains(x)).collect();
                cands.get(rng.index(cands.len())).copied()
            } else {
                None
            };
            let busy = |idx: usize, own: &[RoundRef]| {
                idx == 0
                    || idx == split
                    || own[idx].variant != Variant::Full
                    || dups.contains(&idx)
                    || single == Some(idx)
            };
            if json && args.bad_files && nr >= 5 && (rng.chance(0.5) || ordinal == Some(0)) {
                let cands: Vec<usize> = (1..nr).filter(|&x| !busy(x, &own)).collect();
                if !cands.is_empty() {
                    let idx = cands[rng.index(cands.len())];
                    own[idx].variant = Variant::Empty;
                    own[idx].defect = Some(RowDefectKind::EmptyLocations);
                }
            }
            if args.bad_files && nr >= 8 {
                let mut cands: Vec<usize> = (1..nr).filter(|&x| !busy(x, &own)).collect();
                for _ in 0..(nr / 250).max(1) {
                    if cands.is_empty() {
                        break;
                    }
                    let idx = cands.swap_remove(rng.index(cands.len()));
                    own[idx].defect = Some(RowDefectKind::ROTATION[defect_counter % RowDefectKind::ROTATION.len()]);
                    defect_counter += 1;
                }
            }

            let mut file1: Vec<RoundRef> = Vec::with_capacity(split + 2);
            if d > 0 {
                for &idx in &carry[i - 1] {
                    file1.push(RoundRef { carried: true, ..RoundRef::own(d - 1, idx) });
                }
            }
            file1.extend_from_slice(&own[..split]);
            let mut groups = vec![file1];
            if two {
                let mut file2: Vec<RoundRef> = dups.iter().map(|&idx| RoundRef { dup: true, ..own[idx] }).collect();
                file2.extend_from_slice(&own[split..]);
                groups.push(file2);
            }
            if let Some(idx) = single {
                groups.push(vec![RoundRef { dup: true, ..own[idx] }]);
            }
            // Both copies of a duplicated round are marked.
            let dup_idx: Vec<usize> = dups.iter().copied().chain(single).collect();
            let mut files = Vec::with_capacity(groups.len());
            let n_groups = groups.len();
            for (k, mut rounds) in groups.into_iter().enumerate() {
                let n = k + 1;
                for r in rounds.iter_mut() {
                    if r.day == d && dup_idx.contains(&r.idx) {
                        r.dup = true;
                    }
                }
                let layout = if !json {
                    Layout::Csv
                } else if single.is_some() && n == n_groups {
                    Layout::JsonObject
                } else if ordinal == Some(0) {
                    if n == 1 { Layout::JsonArray } else { Layout::JsonLines }
                } else if ordinal == Some(1) && n == 1 {
                    Layout::JsonLines
                } else {
                    rng.pick(&[Layout::JsonArray, Layout::JsonArray, Layout::JsonArrayPretty, Layout::JsonLines])
                };
                let course_field = if (c + d + n) % 3 == 0 { course.name.clone() } else { course.id.clone() };
                let with_date = !json && (c + 2 * d + n) % 4 == 0;
                files.push(FilePlan { n, layout, course_field, with_date, rounds });
            }
            plans.push(DayPlan { course: c, day: d, files, bad: Vec::new() });
        }
    }
    if args.bad_files && total > 0 {
        for (k, kind) in BadFileKind::ALL.into_iter().enumerate() {
            plans[(k * (nd + 1) + 1) % total].bad.push(kind);
        }
    }
    plans
}
