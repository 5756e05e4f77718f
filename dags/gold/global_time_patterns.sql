-- global_time_patterns: one row per (course_id, day_type, time_bucket, hour_of_day) over
-- non-padding fixes: when play happens (hours of the course's local time, fact_fix_pace; fixes without a timestamp go to
-- day_type/time_bucket 'unknown' with hour_of_day NULL).
-- From the reference's silver_normalized/global_time_patterns (REFERENCE §3.4), written to gold.
-- day_type uses the ISO weekday (6 = Saturday, 7 = Sunday → weekend), the one weekday convention
-- of tmctl. Deliberate differences: reads the latest ingest_date per round only; exact median;
-- NULLIF-guarded percentage. Reads gold.fact_fix_pace (the non-padding fixes, pre-joined), not
-- silver.
WITH fixes AS (
    SELECT course_id, round_id, is_problem, pace_gap, hour_of_day, iso_weekday
    FROM gold.fact_fix_pace
),
labelled AS (
    SELECT
        fixes.*,
        CASE
            WHEN iso_weekday IS NULL THEN 'unknown'
            WHEN iso_weekday IN (6, 7) THEN 'weekend'
            ELSE 'weekday'
        END AS day_type,
        CASE
            WHEN hour_of_day IS NULL THEN 'unknown'
            WHEN hour_of_day BETWEEN 5 AND 11 THEN 'morning'
            WHEN hour_of_day BETWEEN 12 AND 17 THEN 'afternoon'
            WHEN hour_of_day BETWEEN 18 AND 23 THEN 'evening'
            ELSE 'night'
        END AS time_bucket
    FROM fixes
)
SELECT
    course_id,
    day_type,
    time_bucket,
    hour_of_day,
    COUNT(*) AS fix_rows,
    COUNT(DISTINCT round_id) AS rounds,
    SUM(CASE WHEN is_problem THEN 1 ELSE 0 END) AS problem_rows,
    ROUND(100.0 * SUM(CASE WHEN is_problem THEN 1 ELSE 0 END) / NULLIF(COUNT(*), 0), 2) AS pct_problem_rows,
    -- in thousandths as integers (silver keeps 3 decimals): the same whatever the row order
    CAST(SUM(CAST(ROUND(pace_gap * 1000) AS BIGINT)) AS DOUBLE) / NULLIF(1000.0 * COUNT(pace_gap), 0) AS avg_pace_gap,
    median(pace_gap) AS median_pace_gap
FROM labelled
GROUP BY course_id, day_type, time_bucket, hour_of_day
