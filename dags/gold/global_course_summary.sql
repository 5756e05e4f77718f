-- global_course_summary: one row per course_id, silver-wide volume and round-flag figures.
-- From the reference's silver_normalized/global_course_summary (REFERENCE §3.4), written to gold.
-- Deliberate differences: reads the latest ingest_date per round only; median_pace_gap is the
-- exact median (the reference used approx_percentile); percentages (0–100, 2 dp) are guarded with
-- NULLIF; rates of rounds are of the course's rounds with at least one non-padding fix.
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
        course_id,
        COUNT(*) AS total_rows,
        SUM(CASE WHEN is_location_padding THEN 1 ELSE 0 END) AS padding_rows,
        SUM(CASE WHEN is_location_padding THEN 0 ELSE 1 END) AS non_padding_rows,
        COUNT(DISTINCT round_id) AS rounds,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding THEN round_id END) AS non_padding_rounds,
        COUNT(DISTINCT device) AS devices,
        SUM(CASE WHEN is_timestamp_missing THEN 1 ELSE 0 END) AS ts_missing_rows,
        SUM(CASE WHEN is_timestamp_missing AND NOT is_location_padding THEN 1 ELSE 0 END) AS ts_missing_non_padding_rows,
        SUM(CASE WHEN NOT is_location_padding AND is_problem THEN 1 ELSE 0 END) AS problem_rows,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding AND is_complete THEN round_id END) AS complete_rounds,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding AND is_nine_hole THEN round_id END) AS nine_hole_rounds,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding AND is_secondary THEN round_id END) AS secondary_rounds,
        COUNT(DISTINCT CASE WHEN NOT is_location_padding AND is_auto_assigned THEN round_id END) AS auto_assigned_rounds,
        AVG(CASE WHEN NOT is_location_padding THEN pace_gap END) AS avg_pace_gap,
        median(CASE WHEN NOT is_location_padding THEN pace_gap END) AS median_pace_gap
    FROM silver_latest
    GROUP BY course_id
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
