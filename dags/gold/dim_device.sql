-- dim_device: one row per device_id (silver rows with a device, padding included).
-- From the reference's silver_normalized/dim_device (REFERENCE §3.4), written to gold instead of
-- silver. Deliberate differences: reads the latest ingest_date per round only; added
-- rounds_seen. Combines the per-(round, device) figures of gold.round_device_profile (not
-- silver).
SELECT
    device AS device_id,
    SUM(total_rows) AS total_rows,
    COUNT(DISTINCT course_id) AS courses_seen,
    COUNT(DISTINCT round_id) AS rounds_seen,
    MIN(first_seen_ts) AS first_seen_ts,
    MAX(last_seen_ts) AS last_seen_ts,
    SUM(ts_missing_rows) AS ts_missing_rows,
    MIN(min_battery_pct) AS min_battery_pct,
    MAX(max_battery_pct) AS max_battery_pct,
    CAST(SUM(battery_pct_micro_sum) AS DOUBLE) / NULLIF(1000000.0 * SUM(battery_pct_count), 0) AS avg_battery_pct
FROM gold.round_device_profile
GROUP BY device
