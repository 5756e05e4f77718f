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
WITH silver_latest AS (
    SELECT s.*
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
),
per_round AS (
    SELECT
        course_id,
        round_id,
        MAX(ingest_date) AS ingest_date,
        MIN(fix_timestamp) AS round_start_ts,
        MAX(fix_timestamp) AS round_end_ts,
        COUNT(*) AS fix_count,
        SUM(CASE WHEN is_timestamp_missing THEN 1 ELSE 0 END) AS ts_missing_fix_count,
        COUNT(DISTINCT hole_number) AS holes_played,
        COUNT(DISTINCT nine_number) AS nines_played,
        MAX(hole_number) AS max_hole_number,
        MIN(section_number) AS min_section_number,
        MAX(section_number) AS max_section_number,
        MIN(CASE WHEN hole_section = 1 THEN section_number END) AS first_tee_section_number,
        MAX(start_hole) AS start_hole,
        MAX(start_section) AS start_section,
        MAX(end_section) AS end_section,
        BOOL_OR(COALESCE(is_nine_hole, FALSE)) AS is_nine_hole,
        BOOL_OR(COALESCE(is_complete, FALSE)) AS is_complete,
        AVG(pace) AS avg_pace_sec,
        MAX(pace) AS max_pace_sec,
        AVG(pace_gap) AS avg_pace_gap_sec,
        AVG(positional_gap) AS avg_positional_gap,
        SUM(CASE WHEN is_projected THEN 1 ELSE 0 END) AS projected_fix_count,
        SUM(CASE WHEN is_problem THEN 1 ELSE 0 END) AS problem_fix_count,
        MIN(battery_percentage) AS min_battery_pct,
        AVG(battery_percentage) AS avg_battery_pct,
        SUM(CASE WHEN battery_percentage < 20 THEN 1 ELSE 0 END) AS low_battery_fix_count,
        SUM(CASE WHEN battery_percentage < 10 THEN 1 ELSE 0 END) AS critical_battery_fix_count,
        SUM(CASE WHEN is_cache THEN 1 ELSE 0 END) AS cached_fix_count
    FROM silver_latest
    WHERE NOT is_location_padding
    GROUP BY course_id, round_id
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
