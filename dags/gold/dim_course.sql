-- dim_course: one row per course_id present in silver (padding rows included), with its
-- configuration, quality and completeness figures and a rollup of its rounds.
-- As REFERENCE §3.3, except: topology comes from gold.course_topology (derived from silver; there
-- is no seed), so unit_names are the derived unit names; added is_loop_course (from
-- course_configuration_analysis, FALSE for a course without rounds); rounds_observed and
-- complete_rounds_observed are 0 rather than NULL for a course without rounds; added the course's
-- profile (gold.dim_course_profile, from dags/courses.toml): course_name, timezone (UTC without
-- a profile), declared course_type, volume_profile, peak season months and profile_missing;
-- is_loop_course is the profile's loop flag when there is one. Its rounds are the sums of
-- gold.course_round_calendar (fact_rounds counted per course and ingest date), its courses those of
-- gold.course_fix_coverage.
WITH courses AS (
    SELECT DISTINCT course_id FROM gold.course_fix_coverage WHERE course_id IS NOT NULL
),
rounds AS (
    SELECT
        course_id,
        SUM(rounds) AS rounds_observed,
        SUM(complete_rounds) AS complete_rounds_observed,
        MIN(first_round_start_ts) AS first_round_start_ts,
        MAX(last_round_start_ts) AS last_round_start_ts,
        array_sort(array_agg(DISTINCT round_length)) AS playable_round_lengths
    FROM gold.course_round_calendar
    GROUP BY course_id
),
units AS (
    SELECT
        course_id,
        array_sort(array_agg(DISTINCT unit_name)) AS unit_names,
        COUNT(DISTINCT unit_name) AS unit_count
    FROM gold.course_topology
    WHERE unit_name IS NOT NULL
    GROUP BY course_id
)
SELECT
    c.course_id,
    cca.likely_course_type,
    COALESCE(p.is_loop_course, cca.is_loop_course, FALSE) AS is_loop_course,
    cca.max_section_seen,
    cca.max_holes_in_round,
    cca.unique_start_holes,
    cca.pct_shotgun_starts,
    cca.pct_nine_hole,
    cca.pct_full_rounds,
    cca.course_complexity_score,
    dq.data_quality_score,
    dq.overall_quality_score,
    dq.pct_missing_pace,
    dq.pct_missing_pace_gap,
    dq.pct_missing_hole_number,
    dq.pct_missing_section_number,
    dq.pct_missing_fix_timestamp,
    dq.pct_missing_start_hole,
    tc.total_rows,
    tc.padding_rows,
    tc.non_padding_rows,
    tc.pct_padding_total,
    tc.pct_ts_missing_total,
    tc.pct_ts_missing_non_padding,
    COALESCE(r.rounds_observed, 0) AS rounds_observed,
    COALESCE(r.complete_rounds_observed, 0) AS complete_rounds_observed,
    r.first_round_start_ts,
    r.last_round_start_ts,
    r.playable_round_lengths,
    u.unit_names,
    COALESCE(u.unit_count, 0) AS unit_count,
    p.course_name,
    COALESCE(p.timezone, 'UTC') AS timezone,
    p.course_type AS profile_course_type,
    p.volume_profile,
    p.peak_season_start_month,
    p.peak_season_end_month,
    p.course_id IS NULL AS profile_missing
FROM courses AS c
LEFT JOIN gold.course_configuration_analysis AS cca ON cca.course_id = c.course_id
LEFT JOIN gold.data_quality_overview AS dq ON dq.course_id = c.course_id
LEFT JOIN gold.telemetry_completeness_summary AS tc ON tc.course_id = c.course_id
LEFT JOIN rounds AS r ON r.course_id = c.course_id
LEFT JOIN units AS u ON u.course_id = c.course_id
LEFT JOIN gold.dim_course_profile AS p ON p.course_id = c.course_id
