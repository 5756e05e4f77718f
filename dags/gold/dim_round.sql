-- dim_round: one row per (course_id, round_id) over all of the round's silver rows (padding
-- included): row counts, observed fixes and the round's attributes.
-- From the reference's silver_normalized/dim_round (REFERENCE §3.4), written to gold instead of
-- silver (silver is the silver DAG's alone). Deliberate differences: reads the latest
-- ingest_date per round only, and says which one (ingest_date) and under how many ingest dates
-- the round arrived (ingest_dates_seen); uniqueness of (course_id, round_id) is tested (the
-- reference had no uniqueness test).
-- Selected from round_fix_profile, which takes the round's silver rows in the same pass as the
-- other per-round figures.
SELECT
    course_id,
    round_id,
    ingest_date,
    ingest_dates_seen,
    total_rows,
    padding_rows,
    non_padding_rows,
    ts_missing_rows,
    ts_missing_non_padding_rows,
    first_fix_ts,
    last_fix_ts,
    holes_observed,
    nines_observed,
    min_section_number,
    max_section_number,
    round_start_time,
    round_end_time,
    start_hole,
    start_section,
    end_section,
    current_nine,
    goal_time,
    goal_name,
    goal_time_fraction,
    device_id,
    first_fix,
    last_fix,
    is_nine_hole,
    is_complete,
    is_incomplete,
    is_secondary,
    is_auto_assigned
FROM gold.round_fix_profile
