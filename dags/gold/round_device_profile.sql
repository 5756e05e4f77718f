-- round_device_profile: one row per (course_id, round_id, device) over the round's silver rows
-- with a device (latest ingest_date only, padding included), the figures dim_device and the
-- device counts of global_course_summary / global_overview add up, so that they read this table
-- instead of silver. Not in the reference. battery_pct_micro_sum (millionths of a percent, an
-- integer) / battery_pct_count give an average battery that does not depend on the order the
-- rounds are added in.
WITH silver_latest AS (
    SELECT s.*
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
)
SELECT
    course_id,
    round_id,
    device,
    MAX(ingest_date) AS ingest_date,
    COUNT(*) AS total_rows,
    SUM(CASE WHEN is_timestamp_missing THEN 1 ELSE 0 END) AS ts_missing_rows,
    MIN(fix_timestamp) AS first_seen_ts,
    MAX(fix_timestamp) AS last_seen_ts,
    MIN(battery_percentage) AS min_battery_pct,
    MAX(battery_percentage) AS max_battery_pct,
    SUM(CAST(ROUND(battery_percentage * 1000000) AS BIGINT)) AS battery_pct_micro_sum,
    COUNT(battery_percentage) AS battery_pct_count
FROM silver_latest
WHERE device IS NOT NULL
GROUP BY course_id, round_id, device
