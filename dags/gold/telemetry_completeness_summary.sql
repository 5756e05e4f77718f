-- telemetry_completeness_summary: one row per course_id, how much of silver is padding and how
-- much lacks a timestamp (all rows, padding included).
-- As REFERENCE §3.3 (percentages 0–100, 2 dp), except that it reads the latest ingest_date per
-- round only and every division is guarded with NULLIF. Sums the per-ingest-date counts of
-- gold.course_fix_coverage (round_fix_profile added up; not silver).
WITH counts AS (
    SELECT
        course_id,
        SUM(total_rows) AS total_rows,
        SUM(padding_rows) AS padding_rows,
        SUM(non_padding_rows) AS non_padding_rows,
        SUM(ts_missing_rows) AS ts_missing_rows,
        SUM(ts_missing_non_padding_rows) AS ts_missing_non_padding_rows
    FROM gold.course_fix_coverage
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
