-- global_overview: a single row, the global_course_summary figures over all courses plus the
-- number of courses and the first/last fix timestamp (UTC).
-- From the reference's silver_normalized/global_overview (REFERENCE §3.4), written to gold, with
-- the same differences as global_course_summary (latest ingest_date per round, exact median,
-- NULLIF). A single row even when silver is empty (counts 0, the rest NULL). Sums the
-- per-ingest-date figures of gold.course_fix_coverage (round_fix_profile added up) and counts the
-- devices of gold.course_device_coverage; the median reads gold.fact_fix_pace, never silver.
WITH rounds AS (
    SELECT
        COALESCE(SUM(total_rows), 0) AS total_rows,
        COALESCE(SUM(padding_rows), 0) AS padding_rows,
        COALESCE(SUM(non_padding_rows), 0) AS non_padding_rows,
        COUNT(DISTINCT course_id) AS courses,
        COALESCE(SUM(rounds), 0) AS rounds,
        COALESCE(SUM(non_padding_rounds), 0) AS non_padding_rounds,
        COALESCE(SUM(ts_missing_rows), 0) AS ts_missing_rows,
        COALESCE(SUM(ts_missing_non_padding_rows), 0) AS ts_missing_non_padding_rows,
        COALESCE(SUM(problem_rows), 0) AS problem_rows,
        COALESCE(SUM(complete_rounds), 0) AS complete_rounds,
        COALESCE(SUM(nine_hole_rounds), 0) AS nine_hole_rounds,
        COALESCE(SUM(secondary_rounds), 0) AS secondary_rounds,
        COALESCE(SUM(auto_assigned_rounds), 0) AS auto_assigned_rounds,
        MIN(first_fix_ts) AS first_fix_ts,
        MAX(last_fix_ts) AS last_fix_ts,
        CAST(SUM(pace_gap_milli_sum) AS DOUBLE) / NULLIF(1000.0 * SUM(pace_gap_count), 0) AS avg_pace_gap
    FROM gold.course_fix_coverage
),
devices AS (
    SELECT COUNT(DISTINCT device) AS devices FROM gold.course_device_coverage
),
medians AS (
    SELECT median(pace_gap) AS median_pace_gap FROM gold.fact_fix_pace
),
counts AS (
    SELECT rounds.*, devices.devices, medians.median_pace_gap
    FROM rounds CROSS JOIN devices CROSS JOIN medians
)
SELECT
    total_rows,
    padding_rows,
    non_padding_rows,
    courses,
    rounds,
    non_padding_rounds,
    devices,
    ts_missing_rows,
    ts_missing_non_padding_rows,
    problem_rows,
    complete_rounds,
    nine_hole_rounds,
    secondary_rounds,
    auto_assigned_rounds,
    ROUND(100.0 * complete_rounds / NULLIF(non_padding_rounds, 0), 2) AS pct_complete_rounds,
    ROUND(100.0 * nine_hole_rounds / NULLIF(non_padding_rounds, 0), 2) AS pct_nine_hole_rounds,
    ROUND(100.0 * secondary_rounds / NULLIF(non_padding_rounds, 0), 2) AS pct_secondary_rounds,
    ROUND(100.0 * auto_assigned_rounds / NULLIF(non_padding_rounds, 0), 2) AS pct_auto_assigned_rounds,
    ROUND(100.0 * padding_rows / NULLIF(total_rows, 0), 2) AS pct_padding_rows,
    ROUND(100.0 * ts_missing_rows / NULLIF(total_rows, 0), 2) AS pct_ts_missing_rows,
    ROUND(100.0 * ts_missing_non_padding_rows / NULLIF(non_padding_rows, 0), 2) AS pct_ts_missing_non_padding_rows,
    first_fix_ts,
    last_fix_ts,
    avg_pace_gap,
    median_pace_gap
FROM counts
