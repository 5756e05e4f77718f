-- dim_course_profile: one row per course profile of dags/courses.toml (read as the table
-- seed.course_profiles; `tmctl dags validate` checks the file): display name, IANA time zone,
-- course type, volume profile, peak season and season months, loop flag, location and the
-- expected delivery cadence.
-- The reference's hand-entered seed silver.dim_course_profile (REFERENCE §2.5), kept with the
-- DAGs instead of a git-ignored CSV, and with the loop flag the dashboard expected.
SELECT
    course_id,
    course_name,
    timezone,
    course_type,
    volume_profile,
    peak_season_start_month,
    peak_season_end_month,
    season_start_month,
    season_end_month,
    is_loop_course,
    latitude,
    longitude,
    expected_cadence_hours,
    notes
FROM seed.course_profiles
