-- round_hole_profile: one row per (course_id, round_id, nine_number, hole_number) over the
-- round's non-padding fixes with a nine_number or a hole_number (latest ingest_date only; either
-- may be NULL): the sections seen, the fixes, their times and pace, taken in one pass over silver
-- for the two models that group a round's fixes by hole: course_topology (rows with a
-- nine_number) and fact_round_hole_performance (rows with a hole_number), which read this table
-- instead of silver. Averages are kept as sum and count. Not in the reference.
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
    nine_number,
    hole_number,
    MAX(ingest_date) AS ingest_date,
    MIN(section_number) AS min_section_number,
    MAX(section_number) AS max_section_number,
    COUNT(*) AS fix_count,
    MIN(fix_timestamp) AS first_fix_ts,
    MAX(fix_timestamp) AS last_fix_ts,
    SUM(pace) AS pace_sum,
    COUNT(pace) AS pace_count,
    MAX(pace) AS max_pace,
    SUM(pace_gap) AS pace_gap_sum,
    COUNT(pace_gap) AS pace_gap_count,
    BOOL_OR(is_complete) AS any_complete
FROM silver_latest
WHERE NOT is_location_padding
  AND (nine_number IS NOT NULL OR hole_number IS NOT NULL)
GROUP BY course_id, round_id, nine_number, hole_number
