-- fact_rounds: one row per (course_id, round_id), the round as seen in its non-padding fixes.
-- Formulas as REFERENCE §3.3. Deliberate differences:
--   * reads silver through silver_round_latest: only the rows of the round's latest ingest_date;
--   * round_year/month/day/weekday are of the round's start in the course's local time (its
--     profile's time zone, gold.dim_course_profile; UTC, with profile_missing, for a course
--     without one), as are the added round_start_local (wall clock, no zone), round_date_local
--     and round_hour_local; round_date stays the UTC date; timezone names the zone used;
--   * round_weekday is ISO (1 = Monday … 7 = Sunday), the one weekday convention of tmctl;
--   * the four *_rate columns are fractions 0–1 (tested as 0–1, not 0–100);
--   * duration_sec is DOUBLE (silver keeps sub-second timestamps; Trino's date_diff truncated);
--   * added columns: ingest_date (the latest ingest_date the round was read from) and
--     max_hole_number (course_configuration_analysis derives is_loop_course from it).
-- The per-round figures come from round_fix_profile (its np_* columns: the non-padding fixes),
-- which takes the round's silver rows in the same pass as the other per-round figures; a round
-- without a non-padding fix has no row, as when grouping those fixes directly.
WITH per_round AS (
    SELECT
        course_id,
        round_id,
        ingest_date,
        np_first_fix_ts AS round_start_ts,
        np_last_fix_ts AS round_end_ts,
        non_padding_rows AS fix_count,
        ts_missing_non_padding_rows AS ts_missing_fix_count,
        np_holes_played AS holes_played,
        np_nines_played AS nines_played,
        np_max_hole_number AS max_hole_number,
        np_min_section_number AS min_section_number,
        np_max_section_number AS max_section_number,
        np_first_tee_section_number AS first_tee_section_number,
        np_start_hole AS start_hole,
        np_start_section AS start_section,
        np_end_section AS end_section,
        np_nine_hole = 1 AS is_nine_hole,
        np_complete = 1 AS is_complete,
        np_pace_sum / NULLIF(np_pace_count, 0) AS avg_pace_sec,
        np_max_pace AS max_pace_sec,
        np_pace_gap_sum / NULLIF(pace_gap_count, 0) AS avg_pace_gap_sec,
        np_positional_gap_sum / NULLIF(np_positional_gap_count, 0) AS avg_positional_gap,
        np_projected_rows AS projected_fix_count,
        problem_rows AS problem_fix_count,
        np_min_battery_pct AS min_battery_pct,
        np_battery_pct_sum / NULLIF(np_battery_pct_count, 0) AS avg_battery_pct,
        np_low_battery_rows AS low_battery_fix_count,
        np_critical_battery_rows AS critical_battery_fix_count,
        np_cached_rows AS cached_fix_count
    FROM gold.round_fix_profile
    WHERE non_padding_rows > 0
),
timed AS (
    SELECT
        per_round.*,
        date_part('epoch', round_end_ts) - date_part('epoch', round_start_ts) AS duration_sec
    FROM per_round
),
zoned AS (
    SELECT
        timed.*,
        COALESCE(p.timezone, 'UTC') AS timezone,
        p.course_id IS NULL AS profile_missing,
        timezone(COALESCE(p.timezone, 'UTC'), timed.round_start_ts) AS round_start_local
    FROM timed
    LEFT JOIN gold.dim_course_profile AS p ON p.course_id = timed.course_id
)
SELECT
    course_id,
    round_id,
    ingest_date,
    round_start_ts,
    round_end_ts,
    duration_sec,
    ROUND(duration_sec / 60.0, 1) AS round_duration_minutes,
    fix_count,
    ts_missing_fix_count,
    holes_played,
    nines_played,
    max_hole_number,
    min_section_number,
    max_section_number,
    first_tee_section_number,
    start_hole,
    start_section,
    end_section,
    is_nine_hole,
    is_complete,
    avg_pace_sec,
    max_pace_sec,
    avg_pace_gap_sec,
    avg_positional_gap,
    projected_fix_count,
    problem_fix_count,
    min_battery_pct,
    avg_battery_pct,
    low_battery_fix_count,
    critical_battery_fix_count,
    cached_fix_count,
    CAST(projected_fix_count AS DOUBLE) / NULLIF(fix_count, 0) AS projected_rate,
    CAST(problem_fix_count AS DOUBLE) / NULLIF(fix_count, 0) AS problem_rate,
    CAST(cached_fix_count AS DOUBLE) / NULLIF(fix_count, 0) AS cached_rate,
    CAST(ts_missing_fix_count AS DOUBLE) / NULLIF(fix_count, 0) AS ts_missing_rate,
    CASE
        WHEN nines_played >= 3 OR max_section_number > 54 THEN '27'
        WHEN nines_played = 2 OR max_section_number > 27 THEN '18'
        WHEN nines_played = 1 THEN '9'
        ELSE 'unknown'
    END AS round_length,
    CAST(round_start_ts AS DATE) AS round_date,
    CAST(date_part('year', round_start_local) AS INT) AS round_year,
    CAST(date_part('month', round_start_local) AS INT) AS round_month,
    CAST(date_part('day', round_start_local) AS INT) AS round_day,
    CAST(date_part('isodow', round_start_local) + 1 AS INT) AS round_weekday,
    timezone,
    profile_missing,
    round_start_local,
    CAST(round_start_local AS DATE) AS round_date_local,
    CAST(date_part('hour', round_start_local) AS INT) AS round_hour_local
FROM zoned
