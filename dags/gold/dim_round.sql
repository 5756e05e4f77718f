-- dim_round: one row per (course_id, round_id) over all of the round's silver rows (padding
-- included): row counts, observed fixes and the round's attributes.
-- From the reference's silver_normalized/dim_round (REFERENCE §3.4), written to gold instead of
-- silver (silver is the silver DAG's alone). Deliberate differences: reads the latest
-- ingest_date per round only, and says which one (ingest_date) and under how many ingest dates
-- the round arrived (ingest_dates_seen); uniqueness of (course_id, round_id) is tested (the
-- reference had no uniqueness test).
WITH silver_latest AS (
    SELECT s.*, l.ingest_dates_seen
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
    MAX(ingest_dates_seen) AS ingest_dates_seen,
    COUNT(*) AS total_rows,
    SUM(CASE WHEN is_location_padding THEN 1 ELSE 0 END) AS padding_rows,
    SUM(CASE WHEN is_location_padding THEN 0 ELSE 1 END) AS non_padding_rows,
    SUM(CASE WHEN is_timestamp_missing THEN 1 ELSE 0 END) AS ts_missing_rows,
    SUM(CASE WHEN is_timestamp_missing AND NOT is_location_padding THEN 1 ELSE 0 END) AS ts_missing_non_padding_rows,
    MIN(fix_timestamp) AS first_fix_ts,
    MAX(fix_timestamp) AS last_fix_ts,
    COUNT(DISTINCT hole_number) AS holes_observed,
    COUNT(DISTINCT nine_number) AS nines_observed,
    MIN(section_number) AS min_section_number,
    MAX(section_number) AS max_section_number,
    MAX(round_start_time) AS round_start_time,
    MAX(round_end_time) AS round_end_time,
    MAX(start_hole) AS start_hole,
    MAX(start_section) AS start_section,
    MAX(end_section) AS end_section,
    MAX(current_nine) AS current_nine,
    MAX(goal_time) AS goal_time,
    MAX(goal_name) AS goal_name,
    MAX(goal_time_fraction) AS goal_time_fraction,
    MAX(device) AS device_id,
    MAX(first_fix) AS first_fix,
    MAX(last_fix) AS last_fix,
    BOOL_OR(COALESCE(is_nine_hole, FALSE)) AS is_nine_hole,
    BOOL_OR(COALESCE(is_complete, FALSE)) AS is_complete,
    BOOL_OR(COALESCE(is_incomplete, FALSE)) AS is_incomplete,
    BOOL_OR(COALESCE(is_secondary, FALSE)) AS is_secondary,
    BOOL_OR(COALESCE(is_auto_assigned, FALSE)) AS is_auto_assigned
FROM silver_latest
WHERE course_id IS NOT NULL
  AND round_id IS NOT NULL
GROUP BY course_id, round_id
