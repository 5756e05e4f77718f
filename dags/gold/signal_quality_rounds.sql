-- signal_quality_rounds: one row per (course_id, round_id), the signal-quality columns of
-- fact_rounds. As REFERENCE §3.3, except that the rates are fractions tested as 0–1 (the
-- reference tested them with between_0_and_100, which could not fail; REFERENCE §8.2 #8).
SELECT
    course_id,
    round_id,
    fix_count,
    projected_fix_count,
    problem_fix_count,
    projected_rate,
    problem_rate,
    ingest_date
FROM gold.fact_rounds
