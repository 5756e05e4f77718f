-- critical_column_gaps: one row per course_id, the share of non-padding fixes missing the
-- columns pace analysis depends on (0–100, 2 dp), a status per concern, a usability score
-- (0–100, 1 dp) and the most pressing recommendation.
-- Formulas as REFERENCE §3.3. Deliberate differences: every division is guarded with NULLIF
-- (the reference divided by total_events without it, REFERENCE §8.2 #8); reads the latest
-- ingest_date per round only; statuses, score and recommendation use the unrounded percentages;
-- the derived percentages are output (worst_pace_missing_pct, device_health_missing_pct,
-- round_config_missing_pct). The counts are sums of gold.course_fix_coverage's per-ingest-date counts
-- (round_fix_profile added up; not silver).
WITH counts AS (
    -- courses with at least one non-padding fix, as the per-fix WHERE NOT is_location_padding did
    SELECT
        course_id,
        SUM(non_padding_rows) AS total_events,
        SUM(n_missing_pace) AS n_pace,
        SUM(n_missing_pace_gap) AS n_pace_gap,
        SUM(n_missing_positional_gap) AS n_positional_gap,
        SUM(n_missing_hole_number) AS n_hole,
        SUM(n_missing_section_number) AS n_section,
        SUM(n_missing_latitude) AS n_latitude,
        SUM(n_missing_fix_timestamp) AS n_timestamp,
        SUM(n_missing_battery) AS n_battery,
        SUM(n_missing_is_projected) AS n_projected,
        SUM(n_missing_start_hole) AS n_start_hole,
        SUM(n_missing_goal_time) AS n_goal_time
    FROM gold.course_fix_coverage
    GROUP BY course_id
    HAVING SUM(non_padding_rows) > 0
),
pct AS (
    SELECT
        course_id,
        total_events,
        100.0 * n_pace / NULLIF(total_events, 0) AS p_pace,
        100.0 * n_pace_gap / NULLIF(total_events, 0) AS p_pace_gap,
        100.0 * n_positional_gap / NULLIF(total_events, 0) AS p_positional_gap,
        100.0 * n_hole / NULLIF(total_events, 0) AS p_hole,
        100.0 * n_section / NULLIF(total_events, 0) AS p_section,
        100.0 * n_latitude / NULLIF(total_events, 0) AS p_latitude,
        100.0 * n_timestamp / NULLIF(total_events, 0) AS p_timestamp,
        100.0 * n_battery / NULLIF(total_events, 0) AS p_battery,
        100.0 * n_start_hole / NULLIF(total_events, 0) AS p_start_hole,
        100.0 * n_goal_time / NULLIF(total_events, 0) AS p_goal_time,
        100.0 * (n_battery + n_projected) / NULLIF(2 * total_events, 0) AS p_device_health,
        100.0 * (n_goal_time + n_start_hole) / NULLIF(2 * total_events, 0) AS p_round_config
    FROM counts
),
derived AS (
    SELECT pct.*, GREATEST(p_pace, p_pace_gap) AS p_worst_pace
    FROM pct
)
SELECT
    course_id,
    total_events,
    ROUND(p_pace, 2) AS pct_missing_pace,
    ROUND(p_pace_gap, 2) AS pct_missing_pace_gap,
    ROUND(p_positional_gap, 2) AS pct_missing_positional_gap,
    ROUND(p_hole, 2) AS pct_missing_hole,
    ROUND(p_section, 2) AS pct_missing_section,
    ROUND(p_latitude, 2) AS pct_missing_latitude,
    ROUND(p_timestamp, 2) AS pct_missing_timestamp,
    ROUND(p_battery, 2) AS pct_missing_battery,
    ROUND(p_start_hole, 2) AS pct_missing_start_hole,
    ROUND(p_goal_time, 2) AS pct_missing_goal_time,
    ROUND(p_worst_pace, 2) AS worst_pace_missing_pct,
    ROUND(p_device_health, 2) AS device_health_missing_pct,
    ROUND(p_round_config, 2) AS round_config_missing_pct,
    CASE
        WHEN p_worst_pace > 50 THEN '🔴 CRITICAL: Pace analysis NOT possible'
        WHEN p_worst_pace > 20 THEN '🟠 WARNING: Pace analysis degraded'
        WHEN p_worst_pace > 5 THEN '🟡 MINOR: Some pace gaps'
        ELSE '🟢 GOOD: Pace data complete'
    END AS pace_data_status,
    CASE
        WHEN p_hole > 30 THEN '🔴 CRITICAL: Hole assignment missing'
        WHEN p_hole > 10 THEN '🟠 WARNING: Hole assignment degraded'
        ELSE '🟢 GOOD: Hole assignment complete'
    END AS location_data_status,
    CASE
        WHEN p_device_health > 50 THEN '🟠 WARNING: Device health data sparse'
        WHEN p_device_health > 20 THEN '🟡 MINOR: Some device health gaps'
        ELSE '🟢 GOOD: Device health data complete'
    END AS device_health_status,
    CASE
        WHEN p_round_config > 80 THEN '🔴 CRITICAL: Goal times not set'
        WHEN p_round_config > 50 THEN '🟠 WARNING: Start hole unknown'
        ELSE '🟢 GOOD: Round configuration complete'
    END AS round_config_status,
    ROUND(
        100 - (0.40 * p_worst_pace + 0.30 * (p_hole + p_timestamp) / 2 + 0.20 * p_device_health + 0.10 * p_round_config),
        1
    ) AS usability_score,
    CASE
        WHEN p_worst_pace > 20 THEN 'Check the pace algorithm: pace is missing for many fixes'
        WHEN p_hole > 20 THEN 'Review location assignment: many fixes have no hole'
        WHEN p_device_health > 50 THEN 'Enable battery reporting on the devices'
        WHEN p_round_config > 80 THEN 'Configure goal times for the course'
        ELSE 'Data quality acceptable'
    END AS top_recommendation
FROM derived
ORDER BY usability_score, course_id
