-- dim_device: one row per device_id (silver rows with a device, padding included).
-- From the reference's silver_normalized/dim_device (REFERENCE §3.4), written to gold instead of
-- silver. Deliberate differences: reads the latest ingest_date per round only; added
-- rounds_seen, the rounds (course and round id, as everywhere in gold) the device reported in.
-- Adds up the per-(course, ingest date, device) figures of gold.course_device_coverage
-- (round_device_profile summed; not silver).
SELECT
    device AS device_id,
    SUM(total_rows) AS total_rows,
    COUNT(DISTINCT course_id) AS courses_seen,
    SUM(rounds) AS rounds_seen,
    MIN(first_seen_ts) AS first_seen_ts,
    MAX(last_seen_ts) AS last_seen_ts,
    SUM(ts_missing_rows) AS ts_missing_rows,
    MIN(min_battery_pct) AS min_battery_pct,
    MAX(max_battery_pct) AS max_battery_pct,
    CAST(SUM(battery_pct_micro_sum) AS DOUBLE) / NULLIF(1000000.0 * SUM(battery_pct_count), 0) AS avg_battery_pct
FROM gold.course_device_coverage
GROUP BY device
