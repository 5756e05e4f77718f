-- gold_coverage_audit: one row per course_id in silver: what silver holds and what each gold
-- model kept of it, so silent filtering shows (e.g. fact_rounds_fix_count_sum should equal
-- silver_non_padding_rows).
-- As REFERENCE §3.3 (counts of silver, fact_rounds, fact_round_hole_performance, the month and
-- weekday models, dim_course presence and unit_count). Deliberate differences: the silver_*
-- counts are of the rows gold reads (latest ingest_date per round), and new columns show what
-- that filter dropped: silver_rows_all_ingest_dates, superseded_rows (rows of earlier ingest
-- dates of re-delivered rounds) and rounds_in_several_ingest_dates (the quality metric of
-- SPEC §5). Counts are 0, not NULL, when a model has no row for the course. The silver_* counts
-- are sums of gold.silver_round_latest (all ingest dates) and gold.course_fix_coverage (latest
-- ingest date: round_fix_profile added up), not counts of silver itself; the hole_perf_* counts are sums of
-- gold.hole_performance_coverage (fact_round_hole_performance per ingest date).
WITH courses AS (
    SELECT
        course_id,
        SUM(rows_all_ingest_dates) AS silver_rows_all_ingest_dates,
        SUM(CASE WHEN ingest_dates_seen > 1 THEN 1 ELSE 0 END) AS rounds_in_several_ingest_dates
    FROM gold.silver_round_latest
    GROUP BY course_id
),
latest AS (
    SELECT
        course_id,
        SUM(total_rows) AS silver_rows,
        SUM(padding_rows) AS silver_padding_rows,
        SUM(non_padding_rows) AS silver_non_padding_rows,
        SUM(ts_missing_rows) AS silver_ts_missing_rows,
        SUM(ts_missing_non_padding_rows) AS silver_ts_missing_non_padding_rows,
        SUM(rounds) AS silver_rounds,
        SUM(non_padding_rounds) AS silver_rounds_non_padding
    FROM gold.course_fix_coverage
    GROUP BY course_id
),
fr AS (
    SELECT
        course_id,
        COUNT(*) AS fact_rounds_rows,
        COUNT(DISTINCT round_id) AS fact_rounds_distinct_rounds,
        SUM(fix_count) AS fact_rounds_fix_count_sum
    FROM gold.fact_rounds
    GROUP BY course_id
),
hp AS (
    SELECT
        course_id,
        SUM(hole_perf_rows) AS hole_perf_rows,
        SUM(hole_perf_distinct_rounds) AS hole_perf_distinct_rounds,
        SUM(hole_perf_distinct_round_hole_nine) AS hole_perf_distinct_round_hole_nine
    FROM gold.hole_performance_coverage
    GROUP BY course_id
),
mo AS (
    SELECT
        course_id,
        SUM(rounds) AS month_rounds_sum,
        SUM(CASE WHEN month_number = 0 THEN rounds ELSE 0 END) AS month_rounds_unknown
    FROM gold.course_rounds_by_month
    GROUP BY course_id
),
wd AS (
    SELECT
        course_id,
        SUM(rounds) AS weekday_rounds_sum,
        SUM(CASE WHEN weekday_number = 0 THEN rounds ELSE 0 END) AS weekday_rounds_unknown
    FROM gold.course_rounds_by_weekday
    GROUP BY course_id
)
SELECT
    c.course_id,
    c.silver_rows_all_ingest_dates,
    c.silver_rows_all_ingest_dates - COALESCE(latest.silver_rows, 0) AS superseded_rows,
    COALESCE(c.rounds_in_several_ingest_dates, 0) AS rounds_in_several_ingest_dates,
    COALESCE(latest.silver_rows, 0) AS silver_rows,
    COALESCE(latest.silver_padding_rows, 0) AS silver_padding_rows,
    COALESCE(latest.silver_non_padding_rows, 0) AS silver_non_padding_rows,
    COALESCE(latest.silver_ts_missing_rows, 0) AS silver_ts_missing_rows,
    COALESCE(latest.silver_ts_missing_non_padding_rows, 0) AS silver_ts_missing_non_padding_rows,
    COALESCE(latest.silver_rounds, 0) AS silver_rounds,
    COALESCE(latest.silver_rounds_non_padding, 0) AS silver_rounds_non_padding,
    COALESCE(fr.fact_rounds_rows, 0) AS fact_rounds_rows,
    COALESCE(fr.fact_rounds_distinct_rounds, 0) AS fact_rounds_distinct_rounds,
    COALESCE(fr.fact_rounds_fix_count_sum, 0) AS fact_rounds_fix_count_sum,
    COALESCE(hp.hole_perf_rows, 0) AS hole_perf_rows,
    COALESCE(hp.hole_perf_distinct_rounds, 0) AS hole_perf_distinct_rounds,
    COALESCE(hp.hole_perf_distinct_round_hole_nine, 0) AS hole_perf_distinct_round_hole_nine,
    COALESCE(mo.month_rounds_sum, 0) AS month_rounds_sum,
    COALESCE(mo.month_rounds_unknown, 0) AS month_rounds_unknown,
    COALESCE(wd.weekday_rounds_sum, 0) AS weekday_rounds_sum,
    COALESCE(wd.weekday_rounds_unknown, 0) AS weekday_rounds_unknown,
    CASE WHEN dc.course_id IS NULL THEN 0 ELSE 1 END AS in_dim_course,
    dc.unit_count AS dim_course_unit_count
FROM courses AS c
LEFT JOIN latest ON latest.course_id = c.course_id
LEFT JOIN fr ON fr.course_id = c.course_id
LEFT JOIN hp ON hp.course_id = c.course_id
LEFT JOIN mo ON mo.course_id = c.course_id
LEFT JOIN wd ON wd.course_id = c.course_id
LEFT JOIN gold.dim_course AS dc ON dc.course_id = c.course_id
