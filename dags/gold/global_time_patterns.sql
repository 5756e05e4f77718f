-- global_time_patterns: one row per (course_id, day_type, time_bucket, hour_of_day) over
-- non-padding fixes: when play happens (UTC hours; fixes without a timestamp go to
-- day_type/time_bucket 'unknown' with hour_of_day NULL).
-- From the reference's silver_normalized/global_time_patterns (REFERENCE §3.4), written to gold.
-- day_type uses the ISO weekday (6 = Saturday, 7 = Sunday → weekend), the one weekday convention
-- of tmctl. Deliberate differences: reads the latest ingest_date per round only; exact median;
-- NULLIF-guarded percentage.
WITH silver_latest AS (
    SELECT s.*
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
),
fixes AS (
    SELECT
        course_id,
        round_id,
        is_problem,
        pace_gap,
        CAST(date_part('hour', fix_timestamp) AS INT) AS hour_of_day,
        CAST(date_part('isodow', fix_timestamp) + 1 AS INT) AS iso_weekday
    FROM silver_latest
    WHERE NOT is_location_padding
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
    AVG(pace_gap) AS avg_pace_gap,
    median(pace_gap) AS median_pace_gap
FROM labelled
GROUP BY course_id, day_type, time_bucket, hour_of_day
