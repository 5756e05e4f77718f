-- course_fix_coverage: gold.round_fix_profile added up per (course_id, ingest_date): the rounds,
-- their silver rows and the integer counts the course-level and global summaries divide. A
-- round sits under its latest ingest date only, so the rows of different ingest dates never
-- count a round twice and add up to the course's figures. telemetry_completeness_summary,
-- critical_column_gaps, data_quality_overview, global_course_summary, global_overview and
-- dim_course sum these few rows per course instead of one row per round of the whole history
-- on every run. Not in the reference. Columns:
--   * rounds, non_padding_rounds (rounds with at least one non-padding fix);
--   * the sums of round_fix_profile's row counts, flags (np_* → complete_rounds, …) and
--     n_missing_* counts, and of its pace_gap thousandths (pace_gap_milli_sum / pace_gap_count);
--   * first/last_fix_ts over the rounds' rows.
SELECT
    course_id,
    ingest_date,
    COUNT(*) AS rounds,
    SUM(CASE WHEN non_padding_rows > 0 THEN 1 ELSE 0 END) AS non_padding_rounds,
    SUM(total_rows) AS total_rows,
    SUM(padding_rows) AS padding_rows,
    SUM(non_padding_rows) AS non_padding_rows,
    SUM(ts_missing_rows) AS ts_missing_rows,
    SUM(ts_missing_non_padding_rows) AS ts_missing_non_padding_rows,
    SUM(problem_rows) AS problem_rows,
    SUM(np_complete) AS complete_rounds,
    SUM(np_nine_hole) AS nine_hole_rounds,
    SUM(np_secondary) AS secondary_rounds,
    SUM(np_auto_assigned) AS auto_assigned_rounds,
    SUM(pace_gap_milli_sum) AS pace_gap_milli_sum,
    SUM(pace_gap_count) AS pace_gap_count,
    MIN(first_fix_ts) AS first_fix_ts,
    MAX(last_fix_ts) AS last_fix_ts,
    SUM(n_missing_pace) AS n_missing_pace,
    SUM(n_missing_pace_gap) AS n_missing_pace_gap,
    SUM(n_missing_positional_gap) AS n_missing_positional_gap,
    SUM(n_missing_goal_time) AS n_missing_goal_time,
    SUM(n_missing_latitude) AS n_missing_latitude,
    SUM(n_missing_coordinates) AS n_missing_coordinates,
    SUM(n_missing_fix_timestamp) AS n_missing_fix_timestamp,
    SUM(n_missing_hole_number) AS n_missing_hole_number,
    SUM(n_missing_section_number) AS n_missing_section_number,
    SUM(n_missing_hole_section) AS n_missing_hole_section,
    SUM(n_missing_nine_number) AS n_missing_nine_number,
    SUM(n_missing_current_nine) AS n_missing_current_nine,
    SUM(n_missing_battery) AS n_missing_battery,
    SUM(n_missing_is_cache) AS n_missing_is_cache,
    SUM(n_missing_is_projected) AS n_missing_is_projected,
    SUM(n_missing_is_problem) AS n_missing_is_problem,
    SUM(n_missing_start_hole) AS n_missing_start_hole,
    SUM(n_missing_start_section) AS n_missing_start_section,
    SUM(n_missing_end_section) AS n_missing_end_section,
    SUM(n_missing_is_nine_hole) AS n_missing_is_nine_hole,
    SUM(n_missing_is_complete) AS n_missing_is_complete
FROM gold.round_fix_profile
GROUP BY course_id, ingest_date
