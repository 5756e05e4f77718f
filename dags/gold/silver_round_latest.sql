-- silver_round_latest: one row per (course_id, round_id) naming the ingest_date whose rows are
-- the round's current version.
-- Not in the reference. It is the shared first step of gold (REFERENCE §8.2 #1): silver keeps a
-- round once per ingest_date it arrived under, and the reference's gold counted such a round
-- twice. Every gold model that reads silver joins it to this table on
-- (course_id, round_id, ingest_date = latest_ingest_date), so gold sees each round once, as last
-- delivered. ingest_dates_seen > 1 marks re-delivered rounds (counted in gold_coverage_audit).
-- Rows with a NULL round_id never reach silver; they are excluded here as well.
SELECT
    course_id,
    round_id,
    MAX(ingest_date) AS latest_ingest_date,
    MIN(ingest_date) AS first_ingest_date,
    COUNT(DISTINCT ingest_date) AS ingest_dates_seen,
    COUNT(*) AS rows_all_ingest_dates
FROM silver.fact_telemetry_event
WHERE round_id IS NOT NULL
GROUP BY course_id, round_id
