-- hole_performance_coverage: what gold.fact_round_hole_performance holds per (course_id,
-- ingest_date): its rows, distinct rounds and distinct (round, hole, nine). gold_coverage_audit
-- adds these up per course instead of counting distinct values over every hole row of the
-- history on every run. A round's rows all sit in its latest ingest date, so distinct rounds (and
-- distinct round-hole-nines) of different ingest dates never overlap and their counts add up.
SELECT
    course_id,
    ingest_date,
    COUNT(*) AS hole_perf_rows,
    COUNT(DISTINCT round_id) AS hole_perf_distinct_rounds,
    COUNT(DISTINCT concat(round_id, ':', CAST(hole_number AS VARCHAR), ':', CAST(nine_number AS VARCHAR)))
        AS hole_perf_distinct_round_hole_nine
FROM gold.fact_round_hole_performance
GROUP BY course_id, ingest_date
