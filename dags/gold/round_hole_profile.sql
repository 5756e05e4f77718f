-- round_hole_profile: one row per (course_id, round_id, nine_number, hole_number) over the
-- round's non-padding fixes with a nine_number (latest ingest_date only; hole_number may be
-- NULL): the sections seen and the fixes, which course_topology combines per course and nine
-- instead of reading silver. Not in the reference.
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
    COUNT(*) AS fix_count
FROM silver_latest
WHERE NOT is_location_padding
  AND nine_number IS NOT NULL
GROUP BY course_id, round_id, nine_number, hole_number
