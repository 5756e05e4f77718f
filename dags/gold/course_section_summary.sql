-- course_section_summary: one row per (course_id, nine_number, hole_number, section_number), the
-- non-padding fixes seen there (latest ingest_date of each round only): how many rounds and fixes,
-- their pace versus goal (seconds, + behind) and the centroid of their coordinates.
-- The reference computed "pace by section" and the course map's section centroids from silver on
-- every dashboard view (REFERENCE §6); this reads the narrow gold.fact_fix_pace once per run.
-- Averages are sums of integers (pace in thousandths of a second, coordinates in millionths of a
-- degree) divided once, so the result does not depend on the order rows are added in; the
-- median is exact.
SELECT
    course_id,
    nine_number,
    hole_number,
    section_number,
    COUNT(DISTINCT round_id) AS rounds,
    COUNT(*) AS fix_count,
    COUNT(pace) AS pace_count,
    CAST(SUM(CAST(ROUND(pace * 1000) AS BIGINT)) AS DOUBLE) / NULLIF(COUNT(pace), 0) / 1000.0 AS avg_pace_sec,
    MEDIAN(pace) AS median_pace_sec,
    SUM(CASE WHEN latitude IS NOT NULL AND longitude IS NOT NULL THEN 1 ELSE 0 END) AS located_fix_count,
    CAST(SUM(CASE WHEN longitude IS NOT NULL THEN CAST(ROUND(latitude * 1000000) AS BIGINT) END) AS DOUBLE)
        / NULLIF(SUM(CASE WHEN latitude IS NOT NULL AND longitude IS NOT NULL THEN 1 ELSE 0 END), 0) / 1000000.0
        AS avg_latitude,
    CAST(SUM(CASE WHEN latitude IS NOT NULL THEN CAST(ROUND(longitude * 1000000) AS BIGINT) END) AS DOUBLE)
        / NULLIF(SUM(CASE WHEN latitude IS NOT NULL AND longitude IS NOT NULL THEN 1 ELSE 0 END), 0) / 1000000.0
        AS avg_longitude
FROM gold.fact_fix_pace
WHERE hole_number IS NOT NULL AND section_number IS NOT NULL
GROUP BY course_id, nine_number, hole_number, section_number
