-- global_overview: a single row, the global_course_summary figures over all courses plus the
-- number of courses and the first/last fix timestamp (UTC).
-- From the reference's silver_normalized/global_overview (REFERENCE §3.4), written to gold, with
-- the same differences as global_course_summary (latest ingest_date per round, exact median,
-- NULLIF). A single row even when silver is empty (counts 0, the rest NULL).
WITH silver_latest AS (
    SELECT s.*
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
),
counts AS (
    SELECT
        COUNT(*) AS total_rows,
        COALESCE(SUM(CASE WHEN is_location_padding THEN 1 ELSE 0 END), 0) AS padding_rows,
        COALESCE(SUM(CASE WHEN is_location_padding THEN 0 ELSE 1 END), 0) AS non_padding_rows,
        COUNT(DISTINCT course_id) AS courses,
        COUNT(DISTINCT concat(course_id, '/', round_id)) AS rounds,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding THEN concat(course_id, '/', round_id) END) AS non_padding_rounds,
        COUNT(DISTINCT device) AS devices,
        COALESCE(SUM(CASE WHEN is_timestamp_missing THEN 1 ELSE 0 END), 0) AS ts_missing_rows,
        COALESCE(SUM(CASE WHEN is_timestamp_missing AND NOT is_location_padding THEN 1 ELSE 0 END), 0)
            AS ts_missing_non_padding_rows,
        COALESCE(SUM(CASE WHEN NOT is_location_padding AND is_problem THEN 1 ELSE 0 END), 0) AS problem_rows,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding AND is_complete THEN concat(course_id, '/', round_id) END)
            AS complete_rounds,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding AND is_nine_hole THEN concat(course_id, '/', round_id) END)
            AS nine_hole_rounds,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding AND is_secondary THEN concat(course_id, '/', round_id) END)
            AS secondary_rounds,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding AND is_auto_assigned THEN concat(course_id, '/', round_id) END)
            AS auto_assigned_rounds,
        MIN(fix_timestamp) AS first_fix_ts,
        MAX(fix_timestamp) AS last_fix_ts,
        AVG(CASE WHEN NOT is_location_padding THEN pace_gap END) AS avg_pace_gap,
        median(CASE WHEN NOT is_location_padding THEN pace_gap END) AS median_pace_gap
    FROM silver_latest
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
