-- course_section_summary: one row per (course_id, nine_number, hole_number, section_number), the
-- non-padding fixes seen there (latest ingest_date of each round only): how many rounds and fixes,
-- their pace versus goal (seconds, + behind) and the centroid of their coordinates.
-- The reference computed "pace by section" and the course map's section centroids from silver on
-- every dashboard view (REFERENCE §6). The counts and sums add up gold.section_pace_coverage (per
-- course, ingest date and section); only the exact median reads gold.fact_fix_pace. Averages are
-- sums of integers (pace in thousandths of a second, coordinates in millionths of a degree)
-- divided once, so the result does not depend on the order rows are added in.
WITH totals AS (
    SELECT
        course_id,
        nine_number,
        hole_number,
        section_number,
        SUM(rounds) AS rounds,
        SUM(fix_count) AS fix_count,
        SUM(pace_count) AS pace_count,
        SUM(pace_milli_sum) AS pace_milli_sum,
        SUM(located_fix_count) AS located_fix_count,
        SUM(latitude_micro_sum) AS latitude_micro_sum,
        SUM(longitude_micro_sum) AS longitude_micro_sum
    FROM gold.section_pace_coverage
    GROUP BY course_id, nine_number, hole_number, section_number
),
medians AS (
    SELECT course_id, nine_number, hole_number, section_number, MEDIAN(pace) AS median_pace_sec
    FROM gold.fact_fix_pace
    WHERE hole_number IS NOT NULL AND section_number IS NOT NULL
    GROUP BY course_id, nine_number, hole_number, section_number
)
SELECT
    t.course_id,
    t.nine_number,
    t.hole_number,
    t.section_number,
    t.rounds,
    t.fix_count,
    t.pace_count,
    CAST(t.pace_milli_sum AS DOUBLE) / NULLIF(t.pace_count, 0) / 1000.0 AS avg_pace_sec,
    m.median_pace_sec,
    t.located_fix_count,
    CAST(t.latitude_micro_sum AS DOUBLE) / NULLIF(t.located_fix_count, 0) / 1000000.0 AS avg_latitude,
    CAST(t.longitude_micro_sum AS DOUBLE) / NULLIF(t.located_fix_count, 0) / 1000000.0 AS avg_longitude
FROM totals AS t
LEFT JOIN medians AS m
  ON m.course_id = t.course_id
 AND (m.nine_number IS NOT DISTINCT FROM t.nine_number)
 AND m.hole_number = t.hole_number
 AND m.section_number = t.section_number
