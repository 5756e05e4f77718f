-- round_device_health: the low-battery fixes of gold.device_health_errors counted per round,
-- device, UTC day of the fix (fix_date; NULL for fixes without a timestamp) and health flag, with
-- the round's local date from gold.fact_rounds. The devices page reads these few rows per round
-- instead of one row per fix, and a date range narrows them by round_date_local. Every figure the
-- page shows adds up exactly from here: fixes by summing, devices and rounds by counting distinct
-- device_id and round_id.
SELECT
    e.course_id,
    e.round_id,
    e.ingest_date,
    r.round_date_local,
    e.device_id,
    CAST(e.fix_timestamp AS DATE) AS fix_date,
    e.health_flag,
    COUNT(*) AS fixes
FROM gold.device_health_errors AS e
LEFT JOIN gold.fact_rounds AS r
  ON r.course_id = e.course_id
 AND r.round_id = e.round_id
GROUP BY e.course_id, e.round_id, e.ingest_date, r.round_date_local, e.device_id, CAST(e.fix_timestamp AS DATE), e.health_flag
