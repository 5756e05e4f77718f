-- data_quality_overview: one row per course_id, the share of non-padding fixes missing each
-- column (pct_missing_*, 0–100, 2 dp) and tiered quality scores (0–100, 1 dp):
-- tier 1 pace (pace, pace_gap, positional_gap, goal_time), tier 2 position (coordinates,
-- fix_timestamp, hole_number, section_number), tier 3 device (battery, is_cache, timestamp
-- flag), tier 4 round context (start_hole, is_nine_hole, is_complete); each tier = 100 − mean of
-- its missing percentages; data_quality_score = mean of the four (overall_quality_score = same).
-- As REFERENCE §3.3. Deliberate differences: reads the latest ingest_date per round only; scores
-- are computed from the unrounded percentages (rounded once, at the end); tier scores and the
-- number of fixes (events) are output; divisions are guarded with NULLIF. The counts are
-- sums of gold.course_fix_coverage's per-ingest-date counts (round_fix_profile added up; not silver).
WITH counts AS (
    -- courses with at least one non-padding fix, as the per-fix WHERE NOT is_location_padding did
    SELECT
        course_id,
        SUM(non_padding_rows) AS events,
        SUM(n_missing_pace) AS n_pace,
        SUM(n_missing_pace_gap) AS n_pace_gap,
        SUM(n_missing_positional_gap) AS n_positional_gap,
        SUM(n_missing_goal_time) AS n_goal_time,
        SUM(n_missing_coordinates) AS n_coordinates,
        SUM(n_missing_fix_timestamp) AS n_fix_timestamp,
        SUM(n_missing_hole_number) AS n_hole_number,
        SUM(n_missing_section_number) AS n_section_number,
        SUM(n_missing_hole_section) AS n_hole_section,
        SUM(n_missing_nine_number) AS n_nine_number,
        SUM(n_missing_current_nine) AS n_current_nine,
        SUM(n_missing_battery) AS n_battery,
        SUM(n_missing_is_cache) AS n_is_cache,
        SUM(n_missing_is_projected) AS n_is_projected,
        SUM(n_missing_is_problem) AS n_is_problem,
        SUM(ts_missing_non_padding_rows) AS n_timestamp_flag,
        SUM(n_missing_start_hole) AS n_start_hole,
        SUM(n_missing_start_section) AS n_start_section,
        SUM(n_missing_end_section) AS n_end_section,
        SUM(n_missing_is_nine_hole) AS n_is_nine_hole,
        SUM(n_missing_is_complete) AS n_is_complete
    FROM gold.course_fix_coverage
    GROUP BY course_id
    HAVING SUM(non_padding_rows) > 0
),
pct AS (
    SELECT
        course_id,
        events,
        100.0 * n_pace / NULLIF(events, 0) AS p_pace,
        100.0 * n_pace_gap / NULLIF(events, 0) AS p_pace_gap,
        100.0 * n_positional_gap / NULLIF(events, 0) AS p_positional_gap,
        100.0 * n_goal_time / NULLIF(events, 0) AS p_goal_time,
        100.0 * n_coordinates / NULLIF(events, 0) AS p_coordinates,
        100.0 * n_fix_timestamp / NULLIF(events, 0) AS p_fix_timestamp,
        100.0 * n_hole_number / NULLIF(events, 0) AS p_hole_number,
        100.0 * n_section_number / NULLIF(events, 0) AS p_section_number,
        100.0 * n_hole_section / NULLIF(events, 0) AS p_hole_section,
        100.0 * n_nine_number / NULLIF(events, 0) AS p_nine_number,
        100.0 * n_current_nine / NULLIF(events, 0) AS p_current_nine,
        100.0 * n_battery / NULLIF(events, 0) AS p_battery,
        100.0 * n_is_cache / NULLIF(events, 0) AS p_is_cache,
        100.0 * n_is_projected / NULLIF(events, 0) AS p_is_projected,
        100.0 * n_is_problem / NULLIF(events, 0) AS p_is_problem,
        100.0 * n_timestamp_flag / NULLIF(events, 0) AS p_timestamp_flag,
        100.0 * n_start_hole / NULLIF(events, 0) AS p_start_hole,
        100.0 * n_start_section / NULLIF(events, 0) AS p_start_section,
        100.0 * n_end_section / NULLIF(events, 0) AS p_end_section,
        100.0 * n_is_nine_hole / NULLIF(events, 0) AS p_is_nine_hole,
        100.0 * n_is_complete / NULLIF(events, 0) AS p_is_complete
    FROM counts
),
tiers AS (
    SELECT
        pct.*,
        100.0 - (p_pace + p_pace_gap + p_positional_gap + p_goal_time) / 4 AS tier1,
        100.0 - (p_coordinates + p_fix_timestamp + p_hole_number + p_section_number) / 4 AS tier2,
        100.0 - (p_battery + p_is_cache + p_timestamp_flag) / 3 AS tier3,
        100.0 - (p_start_hole + p_is_nine_hole + p_is_complete) / 3 AS tier4
    FROM pct
)
SELECT
    course_id,
    events,
    ROUND(p_pace, 2) AS pct_missing_pace,
    ROUND(p_pace_gap, 2) AS pct_missing_pace_gap,
    ROUND(p_positional_gap, 2) AS pct_missing_positional_gap,
    ROUND(p_goal_time, 2) AS pct_missing_goal_time,
    ROUND(p_coordinates, 2) AS pct_missing_coordinates,
    ROUND(p_fix_timestamp, 2) AS pct_missing_fix_timestamp,
    ROUND(p_hole_number, 2) AS pct_missing_hole_number,
    ROUND(p_section_number, 2) AS pct_missing_section_number,
    ROUND(p_hole_section, 2) AS pct_missing_hole_section,
    ROUND(p_nine_number, 2) AS pct_missing_nine_number,
    ROUND(p_current_nine, 2) AS pct_missing_current_nine,
    ROUND(p_battery, 2) AS pct_missing_battery,
    ROUND(p_is_cache, 2) AS pct_missing_is_cache,
    ROUND(p_is_projected, 2) AS pct_missing_is_projected,
    ROUND(p_is_problem, 2) AS pct_missing_is_problem,
    ROUND(p_timestamp_flag, 2) AS pct_timestamp_missing_flag,
    ROUND(p_start_hole, 2) AS pct_missing_start_hole,
    ROUND(p_start_section, 2) AS pct_missing_start_section,
    ROUND(p_end_section, 2) AS pct_missing_end_section,
    ROUND(p_is_nine_hole, 2) AS pct_missing_is_nine_hole,
    ROUND(p_is_complete, 2) AS pct_missing_is_complete,
    ROUND(tier1, 1) AS tier1_pace_score,
    ROUND(tier2, 1) AS tier2_position_score,
    ROUND(tier3, 1) AS tier3_device_score,
    ROUND(tier4, 1) AS tier4_round_context_score,
    ROUND((tier1 + tier2 + tier3 + tier4) / 4, 1) AS data_quality_score,
    ROUND((tier1 + tier2 + tier3 + tier4) / 4, 1) AS overall_quality_score
FROM tiers
ORDER BY data_quality_score, course_id
