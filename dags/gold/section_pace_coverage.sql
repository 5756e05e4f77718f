-- section_pace_coverage: what gold.fact_fix_pace holds per (course_id, ingest_date, nine_number,
-- hole_number, section_number), for course_section_summary: the rounds and fixes seen there,
-- and the integer sums its averages divide (pace in thousandths of a second, coordinates in
-- millionths of a degree). A round's fixes all sit in its latest ingest date, so the distinct
-- rounds of different ingest dates never overlap and add up; the summary sums these rows
-- instead of grouping every fix of the history on every run.
SELECT
    course_id,
    ingest_date,
    nine_number,
    hole_number,
    section_number,
    COUNT(DISTINCT round_id) AS rounds,
    COUNT(*) AS fix_count,
    COUNT(pace) AS pace_count,
    SUM(CAST(ROUND(pace * 1000) AS BIGINT)) AS pace_milli_sum,
    SUM(CASE WHEN latitude IS NOT NULL AND longitude IS NOT NULL THEN 1 ELSE 0 END) AS located_fix_count,
    SUM(CASE WHEN longitude IS NOT NULL THEN CAST(ROUND(latitude * 1000000) AS BIGINT) END) AS latitude_micro_sum,
    SUM(CASE WHEN latitude IS NOT NULL THEN CAST(ROUND(longitude * 1000000) AS BIGINT) END) AS longitude_micro_sum
FROM gold.fact_fix_pace
WHERE hole_number IS NOT NULL AND section_number IS NOT NULL
GROUP BY course_id, ingest_date, nine_number, hole_number, section_number
