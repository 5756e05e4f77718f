-- telemetry_completeness_summary: one row per course_id, how much of silver is padding and how
-- much lacks a timestamp (all rows, padding included).
-- As REFERENCE §3.3 (percentages 0–100, 2 dp), except that it reads the latest ingest_date per
-- round only and every division is guarded with NULLIF.
WITH silver_latest AS (
    SELECT s.*
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
),
counts AS (
    SELECT
        course_id,
        COUNT(*) AS total_rows,
        SUM(CASE WHEN is_location_padding THEN 1 ELSE 0 END) AS padding_rows,
        SUM(CASE WHEN is_location_padding THEN 0 ELSE 1 END) AS non_padding_rows,
        SUM(CASE WHEN is_timestamp_missing THEN 1 ELSE 0 END) AS ts_missing_rows,
        SUM(CASE WHEN is_timestamp_missing AND NOT is_location_padding THEN 1 ELSE 0 END)
            AS ts_missing_non_padding_rows
    FROM silver_latest
    GROUP BY course_id
)
SELECT
    course_id,
    total_rows,
    padding_rows,
    non_padding_rows,
    ts_missing_rows,
    ts_missing_non_padding_rows,
    ROUND(100.0 * padding_rows / NULLIF(total_rows, 0), 2) AS pct_padding_total,
    ROUND(100.0 * ts_missing_rows / NULLIF(total_rows, 0), 2) AS pct_ts_missing_total,
    ROUND(100.0 * ts_missing_non_padding_rows / NULLIF(non_padding_rows, 0), 2) AS pct_ts_missing_non_padding
FROM counts
