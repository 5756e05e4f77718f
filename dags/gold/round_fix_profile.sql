-- round_fix_profile: one row per (course_id, round_id), the counts of the round's silver rows
-- (latest ingest_date only) that the course-level and global summaries add up, so that those
-- read this table, one row per round, instead of silver, one row per fix.
-- Not in the reference. The summaries derive from it: telemetry_completeness_summary,
-- critical_column_gaps, data_quality_overview, gold_coverage_audit, dim_course,
-- global_course_summary and global_overview. Columns:
--   * total/padding/non_padding/ts_missing rows: all of the round's rows (padding included);
--   * problem_rows and n_missing_<column>: its non-padding fixes (is_problem, <column> IS NULL);
--     n_missing_coordinates counts fixes missing latitude or longitude;
--   * np_complete, np_nine_hole, np_secondary, np_auto_assigned: 1 when a non-padding fix has the
--     flag, so their sum is the number of such rounds;
--   * pace_gap_milli_sum / pace_gap_count: the non-padding fixes' pace_gap (silver keeps 3
--     decimals) summed in thousandths, as an integer, so that an average over any number of
--     rounds is the same whatever order the rounds are added in;
--   * first/last_fix_ts over all of its rows.
WITH silver_latest AS (
    SELECT s.*
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
)
SELECT
    course_id,
    round_id,
    MAX(ingest_date) AS ingest_date,
    COUNT(*) AS total_rows,
    SUM(CASE WHEN is_location_padding THEN 1 ELSE 0 END) AS padding_rows,
    SUM(CASE WHEN is_location_padding THEN 0 ELSE 1 END) AS non_padding_rows,
    SUM(CASE WHEN is_timestamp_missing THEN 1 ELSE 0 END) AS ts_missing_rows,
    SUM(CASE WHEN is_timestamp_missing AND NOT is_location_padding THEN 1 ELSE 0 END)
        AS ts_missing_non_padding_rows,
    SUM(CASE WHEN NOT is_location_padding AND is_problem THEN 1 ELSE 0 END) AS problem_rows,
    MIN(fix_timestamp) AS first_fix_ts,
    MAX(fix_timestamp) AS last_fix_ts,
    MAX(CASE WHEN NOT is_location_padding AND is_complete THEN 1 ELSE 0 END) AS np_complete,
    MAX(CASE WHEN NOT is_location_padding AND is_nine_hole THEN 1 ELSE 0 END) AS np_nine_hole,
    MAX(CASE WHEN NOT is_location_padding AND is_secondary THEN 1 ELSE 0 END) AS np_secondary,
    MAX(CASE WHEN NOT is_location_padding AND is_auto_assigned THEN 1 ELSE 0 END) AS np_auto_assigned,
    SUM(CASE WHEN NOT is_location_padding THEN CAST(ROUND(pace_gap * 1000) AS BIGINT) END) AS pace_gap_milli_sum,
    COUNT(CASE WHEN NOT is_location_padding THEN pace_gap END) AS pace_gap_count,
    SUM(CASE WHEN NOT is_location_padding AND pace IS NULL THEN 1 ELSE 0 END) AS n_missing_pace,
    SUM(CASE WHEN NOT is_location_padding AND pace_gap IS NULL THEN 1 ELSE 0 END) AS n_missing_pace_gap,
    SUM(CASE WHEN NOT is_location_padding AND positional_gap IS NULL THEN 1 ELSE 0 END) AS n_missing_positional_gap,
    SUM(CASE WHEN NOT is_location_padding AND goal_time IS NULL THEN 1 ELSE 0 END) AS n_missing_goal_time,
    SUM(CASE WHEN NOT is_location_padding AND latitude IS NULL THEN 1 ELSE 0 END) AS n_missing_latitude,
    SUM(CASE WHEN NOT is_location_padding AND (latitude IS NULL OR longitude IS NULL) THEN 1 ELSE 0 END)
        AS n_missing_coordinates,
    SUM(CASE WHEN NOT is_location_padding AND fix_timestamp IS NULL THEN 1 ELSE 0 END) AS n_missing_fix_timestamp,
    SUM(CASE WHEN NOT is_location_padding AND hole_number IS NULL THEN 1 ELSE 0 END) AS n_missing_hole_number,
    SUM(CASE WHEN NOT is_location_padding AND section_number IS NULL THEN 1 ELSE 0 END) AS n_missing_section_number,
    SUM(CASE WHEN NOT is_location_padding AND hole_section IS NULL THEN 1 ELSE 0 END) AS n_missing_hole_section,
    SUM(CASE WHEN NOT is_location_padding AND nine_number IS NULL THEN 1 ELSE 0 END) AS n_missing_nine_number,
    SUM(CASE WHEN NOT is_location_padding AND current_nine IS NULL THEN 1 ELSE 0 END) AS n_missing_current_nine,
    SUM(CASE WHEN NOT is_location_padding AND battery_percentage IS NULL THEN 1 ELSE 0 END) AS n_missing_battery,
    SUM(CASE WHEN NOT is_location_padding AND is_cache IS NULL THEN 1 ELSE 0 END) AS n_missing_is_cache,
    SUM(CASE WHEN NOT is_location_padding AND is_projected IS NULL THEN 1 ELSE 0 END) AS n_missing_is_projected,
    SUM(CASE WHEN NOT is_location_padding AND is_problem IS NULL THEN 1 ELSE 0 END) AS n_missing_is_problem,
    SUM(CASE WHEN NOT is_location_padding AND start_hole IS NULL THEN 1 ELSE 0 END) AS n_missing_start_hole,
    SUM(CASE WHEN NOT is_location_padding AND start_section IS NULL THEN 1 ELSE 0 END) AS n_missing_start_section,
    SUM(CASE WHEN NOT is_location_padding AND end_section IS NULL THEN 1 ELSE 0 END) AS n_missing_end_section,
    SUM(CASE WHEN NOT is_location_padding AND is_nine_hole IS NULL THEN 1 ELSE 0 END) AS n_missing_is_nine_hole,
    SUM(CASE WHEN NOT is_location_padding AND is_complete IS NULL THEN 1 ELSE 0 END) AS n_missing_is_complete
FROM silver_latest
GROUP BY course_id, round_id
