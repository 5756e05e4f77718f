-- dim_device: one row per device_id (silver rows with a device, padding included).
-- From the reference's silver_normalized/dim_device (REFERENCE §3.4), written to gold instead of
-- silver. Deliberate differences: reads the latest ingest_date per round only; added
-- rounds_seen.
WITH silver_latest AS (
    SELECT s.*
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
)
SELECT
    device AS device_id,
    COUNT(*) AS total_rows,
    COUNT(DISTINCT course_id) AS courses_seen,
    COUNT(DISTINCT round_id) AS rounds_seen,
    MIN(fix_timestamp) AS first_seen_ts,
    MAX(fix_timestamp) AS last_seen_ts,
    SUM(CASE WHEN is_timestamp_missing THEN 1 ELSE 0 END) AS ts_missing_rows,
    MIN(battery_percentage) AS min_battery_pct,
    MAX(battery_percentage) AS max_battery_pct,
    AVG(battery_percentage) AS avg_battery_pct
FROM silver_latest
WHERE device IS NOT NULL
GROUP BY device
