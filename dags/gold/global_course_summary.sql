-- global_course_summary: one row per course_id, silver-wide volume and round-flag figures.
-- From the reference's silver_normalized/global_course_summary (REFERENCE §3.4), written to gold.
-- Deliberate differences: reads the latest ingest_date per round only; median_pace_gap is the
-- exact median (the reference used approx_percentile); percentages (0–100, 2 dp) are guarded with
-- NULLIF; rates of rounds are of the course's rounds with at least one non-padding fix. Sums
-- the per-ingest-date figures of gold.course_fix_coverage (round_fix_profile added up) and counts
-- the devices of gold.course_device_coverage; the median reads gold.fact_fix_pace (pre-joined
-- non-padding fixes), never silver.
WITH rounds AS (
    SELECT
        course_id,
        SUM(total_rows) AS total_rows,
        SUM(padding_rows) AS padding_rows,
        SUM(non_padding_rows) AS non_padding_rows,
        SUM(rounds) AS rounds,
        SUM(non_padding_rounds) AS non_padding_rounds,
        SUM(ts_missing_rows) AS ts_missing_rows,
        SUM(ts_missing_non_padding_rows) AS ts_missing_non_padding_rows,
        SUM(problem_rows) AS problem_rows,
        SUM(complete_rounds) AS complete_rounds,
        SUM(nine_hole_rounds) AS nine_hole_rounds,
        SUM(secondary_rounds) AS secondary_rounds,
        SUM(auto_assigned_rounds) AS auto_assigned_rounds,
        CAST(SUM(pace_gap_milli_sum) AS DOUBLE) / NULLIF(1000.0 * SUM(pace_gap_count), 0) AS avg_pace_gap
    FROM gold.course_fix_coverage
    GROUP BY course_id
),
devices AS (
    SELECT course_id, COUNT(DISTINCT device) AS devices
    FROM gold.course_device_coverage
    GROUP BY course_id
),
medians AS (
    SELECT course_id, median(pace_gap) AS median_pace_gap
    FROM gold.fact_fix_pace
    GROUP BY course_id
),
counts AS (
    SELECT
        r.*,
        COALESCE(d.devices, 0) AS devices,
        m.median_pace_gap
    FROM rounds AS r
    LEFT JOIN devices AS d ON d.course_id = r.course_id
    LEFT JOIN medians AS m ON m.course_id = r.course_id
)
SELECT
    course_id,
    total_rows,
    padding_rows,
    non_padding_rows,
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
    avg_pace_gap,
    median_pace_gap
FROM counts
