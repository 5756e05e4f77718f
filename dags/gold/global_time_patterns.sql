-- global_time_patterns: one row per (course_id, day_type, time_bucket, hour_of_day) over
-- non-padding fixes: when play happens (hours of the course's local time; fixes without a
-- timestamp go to day_type/time_bucket 'unknown' with hour_of_day NULL).
-- From the reference's silver_normalized/global_time_patterns (REFERENCE §3.4), written to gold.
-- day_type uses the ISO weekday (6 = Saturday, 7 = Sunday → weekend), the one weekday convention
-- of tmctl. Deliberate differences: reads the latest ingest_date per round only; exact median;
-- NULLIF-guarded percentage. The counts and sums add up gold.time_pattern_coverage (per course,
-- ingest date, weekend and hour); only the exact median reads gold.fact_fix_pace (the
-- non-padding fixes, pre-joined), never silver.
WITH totals AS (
    SELECT
        course_id,
        weekend,
        hour_of_day,
        SUM(fix_rows) AS fix_rows,
        SUM(rounds) AS rounds,
        SUM(problem_rows) AS problem_rows,
        SUM(pace_gap_count) AS pace_gap_count,
        SUM(pace_gap_milli_sum) AS pace_gap_milli_sum
    FROM gold.time_pattern_coverage
    GROUP BY course_id, weekend, hour_of_day
),
medians AS (
    SELECT course_id, iso_weekday IN (6, 7) AS weekend, hour_of_day, median(pace_gap) AS median_pace_gap
    FROM gold.fact_fix_pace
    GROUP BY course_id, iso_weekday IN (6, 7), hour_of_day
)
SELECT
    t.course_id,
    CASE
        WHEN t.weekend IS NULL THEN 'unknown'
        WHEN t.weekend THEN 'weekend'
        ELSE 'weekday'
    END AS day_type,
    CASE
        WHEN t.hour_of_day IS NULL THEN 'unknown'
        WHEN t.hour_of_day BETWEEN 5 AND 11 THEN 'morning'
        WHEN t.hour_of_day BETWEEN 12 AND 17 THEN 'afternoon'
        WHEN t.hour_of_day BETWEEN 18 AND 23 THEN 'evening'
        ELSE 'night'
    END AS time_bucket,
    t.hour_of_day,
    t.fix_rows,
    t.rounds,
    t.problem_rows,
    ROUND(100.0 * t.problem_rows / NULLIF(t.fix_rows, 0), 2) AS pct_problem_rows,
    -- in thousandths as integers (silver keeps 3 decimals): the same whatever the row order
    CAST(t.pace_gap_milli_sum AS DOUBLE) / NULLIF(1000.0 * t.pace_gap_count, 0) AS avg_pace_gap,
    m.median_pace_gap
FROM totals AS t
LEFT JOIN medians AS m
  ON m.course_id = t.course_id
 AND (m.weekend IS NOT DISTINCT FROM t.weekend)
 AND (m.hour_of_day IS NOT DISTINCT FROM t.hour_of_day)
