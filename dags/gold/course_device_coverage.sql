-- course_device_coverage: gold.round_device_profile added up per (course_id, ingest_date,
-- device): the rounds the device was seen in, its rows, first and last fix and the integer
-- battery sums dim_device divides. A round sits under its latest ingest date only, so the rows of
-- different ingest dates never count a round twice: dim_device and the device counts of
-- global_course_summary and global_overview read these rows instead of one row per round and
-- device of the whole history on every run. Not in the reference.
SELECT
    course_id,
    ingest_date,
    device,
    COUNT(*) AS rounds,
    SUM(total_rows) AS total_rows,
    SUM(ts_missing_rows) AS ts_missing_rows,
    MIN(first_seen_ts) AS first_seen_ts,
    MAX(last_seen_ts) AS last_seen_ts,
    MIN(min_battery_pct) AS min_battery_pct,
    MAX(max_battery_pct) AS max_battery_pct,
    SUM(battery_pct_micro_sum) AS battery_pct_micro_sum,
    SUM(battery_pct_count) AS battery_pct_count
FROM gold.round_device_profile
GROUP BY course_id, ingest_date, device
