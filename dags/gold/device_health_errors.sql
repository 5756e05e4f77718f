-- device_health_errors: one row per non-padding silver fix with a battery reading below 20 %.
-- As REFERENCE §3.3 (battery_critical below 10 %, battery_low from 10 % to below 20 %).
-- Deliberate differences: reads the latest ingest_date per round only; added columns
-- location_index (so that (course_id, round_id, location_index) identifies the fix and can be
-- tested unique) and device_id.
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
    location_index,
    device AS device_id,
    fix_timestamp,
    battery_percentage,
    CASE WHEN battery_percentage < 10 THEN 'battery_critical' ELSE 'battery_low' END AS health_flag,
    ingest_date
FROM silver_latest
WHERE NOT is_location_padding
  AND battery_percentage IS NOT NULL
  AND battery_percentage < 20
