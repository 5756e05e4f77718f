-- fact_round_hole_performance: one row per (course_id, round_id, hole_number, nine_number):
-- a round's time and pace on one hole; nine_number separates loop 1 from loop 2 of a 9-hole
-- course played as 18.
-- Formulas as REFERENCE §3.3. Deliberate differences:
--   * reads silver through silver_round_latest (latest ingest_date per round);
--   * course_unit comes from gold.course_topology (derived from silver, one row per
--     (course_id, nine_number) by construction and by test) instead of the seed
--     dim_facility_topology, so the join cannot fan out (REFERENCE §8.2 #8);
--   * duration_sec is DOUBLE (sub-second timestamps); added column fix_count;
--   * added the round's round_date_local and nines_played (from gold.fact_rounds), so that
--     course_hole_pace_daily reads this table alone and its run for a few days of play prunes
--     the files of other days by round_date_local's column statistics.
WITH silver_latest AS (
    SELECT s.*
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
),
per_hole AS (
    SELECT
        course_id,
        round_id,
        hole_number,
        nine_number,
        MAX(ingest_date) AS ingest_date,
        MIN(fix_timestamp) AS hole_start_time,
        MAX(fix_timestamp) AS hole_end_time,
        COUNT(*) AS fix_count,
        AVG(pace) AS avg_pace_sec,
        MAX(pace) AS max_pace_sec,
        AVG(pace_gap) AS avg_pace_gap_sec,
        BOOL_OR(is_complete) AS round_was_completed
    FROM silver_latest
    WHERE NOT is_location_padding
      AND hole_number IS NOT NULL
    GROUP BY course_id, round_id, hole_number, nine_number
)
SELECT
    h.course_id,
    h.round_id,
    h.hole_number,
    h.nine_number,
    h.hole_start_time,
    h.hole_end_time,
    date_part('epoch', h.hole_end_time) - date_part('epoch', h.hole_start_time) AS duration_sec,
    h.fix_count,
    h.avg_pace_sec,
    h.max_pace_sec,
    h.avg_pace_gap_sec,
    h.round_was_completed,
    t.unit_name AS course_unit,
    r.round_date_local,
    r.nines_played,
    h.ingest_date
FROM per_hole AS h
LEFT JOIN gold.course_topology AS t
  ON t.course_id = h.course_id
 AND t.nine_number = h.nine_number
LEFT JOIN gold.fact_rounds AS r
  ON r.course_id = h.course_id
 AND r.round_id = h.round_id
