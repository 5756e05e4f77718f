-- pace_summary_by_round: one row per (course_id, round_id), the pace columns of fact_rounds.
-- As REFERENCE §3.3 (fact_rounds already reads only the latest ingest_date per round).
SELECT
    course_id,
    round_id,
    round_start_ts,
    round_end_ts,
    fix_count,
    avg_pace_sec AS avg_pace,
    avg_pace_gap_sec AS avg_pace_gap,
    avg_positional_gap,
    ingest_date
FROM gold.fact_rounds
