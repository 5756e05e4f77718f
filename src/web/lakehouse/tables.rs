//! The table browser: every table of the catalog with its current snapshot's figures, and for
//! one table its snapshots and its partitions (rows per partition from the manifests).

use super::common::{blank_page, fail};
use super::data::{Gold, Row, Val, is_identifier};
use super::{Cell, Grid, NO_DATA, Page, Section, url_encode};
use crate::web::charts::{BarChart, LineChart, Series, fmt_int};

/// The snapshot summary properties the browser shows (the rest is per-partition detail).
const SNAPSHOT_KEYS: &[&str] = &[
    "added-records",
    "deleted-records",
    "added-data-files",
    "deleted-data-files",
    "changed-partition-count",
    "total-data-files",
    "tm.run-key",
    "tm.logical-date",
];

pub async fn page(g: &Gold, selected: Option<&str>) -> Page {
    const T: &str = "Tables";
    let mut p = blank_page(T);
    let names: Vec<String> = g
        .tables
        .iter()
        .filter(|t| t.starts_with("silver."))
        .chain(g.tables.iter().filter(|t| t.starts_with("gold.")))
        .cloned()
        .collect();
    if !names.iter().any(|t| t.starts_with("gold.")) {
        p.no_data = Some(NO_DATA.into());
    }
    if names.is_empty() {
        return p;
    }
    let selected = selected
        .filter(|s| names.iter().any(|n| n == s))
        .map(str::to_string)
        .unwrap_or_else(|| names.iter().find(|n| *n == "silver.fact_telemetry_event").unwrap_or(&names[0]).clone());
    p.keep.push(("table".into(), selected.clone()));
    let cq = g.query().replacen('?', "&", 1);

    let mut list = Section::new("tables", "Tables in the catalog");
    list.note = "Rows and data files of each table's current snapshot (its Iceberg summary), all courses; the \
                 course filter applies to the partitions below."
        .into();
    let mut grid = Grid::new(&["table", "#rows", "#data files", "#snapshots", "last commit (UTC)", "partitioned by"]);
    let mut chosen = None;
    // The tables' metadata, loaded concurrently (one after another it was most of the page).
    let loaded = futures::future::join_all(names.iter().map(|name| async move {
        let ident = crate::lake::parse_ident(name)?;
        g.lake.load_table(&ident).await
    }))
    .await;
    for (name, table) in names.iter().zip(loaded) {
        let table = match table {
            Ok(t) => t,
            Err(e) => {
                fail(&mut p, e.to_string());
                continue;
            }
        };
        let snaps = crate::lake::iceberg::snapshot_infos(&table);
        let current = snaps.iter().find(|s| s.current);
        let md = table.metadata();
        let schema = md.current_schema();
        let parts: Vec<String> = md
            .default_partition_spec()
            .fields()
            .iter()
            .map(|f| {
                let col = schema.name_by_field_id(f.source_id).unwrap_or(&f.name).to_string();
                let t = f.transform.to_string();
                if t == "identity" { col } else { format!("{t}({col})") }
            })
            .collect();
        let get = |k: &str| current.and_then(|s| s.summary.get(k)).and_then(|v| v.parse::<i64>().ok());
        grid.rows.push(vec![
            Cell::text(name.clone()).link(format!("/lakehouse/tables?table={}{cq}", url_encode(name))),
            Cell::num(get("total-records").map(fmt_int).unwrap_or_else(|| "—".into())),
            Cell::num(get("total-data-files").map(fmt_int).unwrap_or_else(|| "—".into())),
            Cell::num(fmt_int(snaps.len() as i64)),
            Cell::text(
                current.map(|s| s.timestamp.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "—".into()),
            ),
            Cell::text(if parts.is_empty() { "—".into() } else { parts.join(", ") }),
        ]);
        if *name == selected {
            let identity: Vec<String> = md
                .default_partition_spec()
                .fields()
                .iter()
                .filter(|f| f.transform.to_string() == "identity")
                .filter_map(|f| schema.name_by_field_id(f.source_id).map(str::to_string))
                .collect();
            chosen = Some((snaps, identity));
        }
    }
    list.table = Some(grid);
    p.sections.push(list);

    let Some((snaps, partition_cols)) = chosen else { return p };
    let mut s = Section::new("snapshots", format!("Snapshots of {selected}"));
    s.note = "Newest first. Every snapshot stays readable: `tmctl query --snapshot ID`.".into();
    let records: Vec<Option<f64>> =
        snaps.iter().map(|s| s.summary.get("total-records").and_then(|v| v.parse::<f64>().ok())).collect();
    if snaps.len() > 1 {
        s.charts.push(
            LineChart::new(
                &format!("Rows of {selected} per snapshot"),
                "snapshot (commit time)",
                "rows",
                snaps.iter().map(|s| s.timestamp.format("%m-%d %H:%M:%S").to_string()).collect(),
                vec![Series::new("rows", records)],
            )
            .to_svg(),
        );
    }
    let mut grid = Grid::new(&["snapshot id", "committed (UTC)", "operation", "#rows", "summary"]);
    for snap in snaps.iter().rev().take(100) {
        let summary: Vec<String> =
            SNAPSHOT_KEYS.iter().filter_map(|k| snap.summary.get(*k).map(|v| format!("{k}={v}"))).collect();
        grid.rows.push(vec![
            Cell::text(format!("{}{}", snap.id, if snap.current { " (current)" } else { "" })).class("mono"),
            Cell::text(snap.timestamp.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
            Cell::text(snap.operation.clone()),
            Cell::num(
                snap.summary.get("total-records").and_then(|v| v.parse::<i64>().ok()).map(fmt_int).unwrap_or_default(),
            ),
            Cell::text(summary.join(", ")).class("mono small"),
        ]);
    }
    s.table = Some(grid);
    p.sections.push(s);

    // Partitions and their row counts (identity partition columns from the table's spec).
    let mut s = Section::new("partitions", format!("Partitions of {selected}"));
    let cols: Vec<&String> = partition_cols.iter().filter(|c| is_identifier(c)).collect();
    if cols.is_empty() {
        s.note = "The table is not partitioned (one full-refresh snapshot per model run).".into();
        p.sections.push(s);
        return p;
    }
    let by_course = cols.iter().any(|c| c.as_str() == "course_id");
    // Rows per partition from the manifests (exact, and no data file is read), as rows of
    // (partition values…, rows) in the partition columns' order, filtered by the course. These are
    // positional `Row`s, not a read model: the columns are whatever the selected table is
    // partitioned by.
    let course_at = partition_cols.iter().position(|c| c == "course_id");
    let counted = match crate::lake::parse_ident(&selected) {
        Ok(ident) => g.lake.partition_rows(&ident).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let counted = counted.map(|parts| {
        parts
            .iter()
            .filter(|(values, _)| match (course_at, g.course.as_str()) {
                (Some(i), course) if !course.is_empty() => values.get(i).is_some_and(|v| v == course),
                _ => true,
            })
            .take(1000)
            .map(|(values, rows)| {
                let mut cells: Vec<Val> = values.iter().cloned().map(Val::Str).collect();
                cells.push(Val::Int(*rows as i64));
                Row(cells)
            })
            .collect::<Vec<Row>>()
    });
    match counted {
        Ok(rows) => {
            s.note = format!(
                "{} partitions, by {}.",
                fmt_int(rows.len() as i64),
                cols.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
            );
            if !by_course && !g.course.is_empty() {
                s.note.push_str(" (Not partitioned by course: all courses shown.)");
            }
            let n = cols.len();
            if rows.len() <= 60 {
                s.charts.push(
                    BarChart::new(
                        "Rows per partition",
                        "partition",
                        "rows",
                        rows.iter().map(|r| (0..n).map(|i| r.s(i)).collect::<Vec<_>>().join(" / ")).collect(),
                        vec![Series::new("rows", rows.iter().map(|r| r.f(n)).collect())],
                    )
                    .to_svg(),
                );
            }
            let mut head: Vec<&str> = cols.iter().map(|c| c.as_str()).collect();
            head.push("#rows");
            let mut grid = Grid::new(&head);
            for r in &rows {
                let mut row: Vec<Cell> = (0..n).map(|i| Cell::text(r.s(i))).collect();
                row.push(Cell::num(fmt_int(r.i(n))));
                grid.rows.push(row);
            }
            s.table = Some(grid);
        }
        Err(e) => fail(&mut p, e),
    }
    p.sections.push(s);
    p
}
