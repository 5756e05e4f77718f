-- time_pattern_coverage: what gold.fact_fix_pace holds per (course_id, ingest_date, weekend,
-- hour_of_day), for global_time_patterns: fixes, distinct rounds, problem fixes and the pace-gap
-- sum in thousandths of a second. weekend is ISO weekday 6 or 7 and hour_of_day the hour, both
-- of the course's local time, NULL for fixes without a timestamp; global_time_patterns names
-- them (day_type, time_bucket). A round's fixes all sit in its latest ingest date, so the
-- distinct rounds of different ingest dates never overlap and add up.
SELECT
    course_id,
    ingest_date,
    iso_weekday IN (6, 7) AS weekend,
    hour_of_day,
    COUNT(*) AS fix_rows,
    COUNT(DISTINCT round_id) AS rounds,
    SUM(CASE WHEN is_problem THEN 1 ELSE 0 END) AS problem_rows,
    COUNT(pace_gap) AS pace_gap_count,
    SUM(CAST(ROUND(pace_gap * 1000) AS BIGINT)) AS pace_gap_milli_sum
FROM gold.fact_fix_pace
GROUP BY course_id, ingest_date, iso_weekday IN (6, 7), hour_of_day
